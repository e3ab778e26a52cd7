"""TensorZero's Rust gateway (from the PyPI `tensorzero` wheel) in front of one OpenAI backend,
for the peer benchmark (benches/peer.rs).

    python scripts/tensorzero_gateway.py --api-base http://127.0.0.1:PORT/v1 --model mock

Writes a config with one model `<model>` whose only provider is `type = "openai"` at
`--api-base` (no API key, observability off: no ClickHouse, Postgres or Valkey), starts the
gateway in this process, prints `TENSORZERO_BASE_URL <url> <version>` (the OpenAI-compatible
base, e.g. `http://127.0.0.1:41234/openai/v1`, and the wheel's version) and serves until stdin closes or the process is killed.
Requests: `POST <url>/chat/completions` with model `tensorzero::model_name::<model>`.
"""

import argparse
import importlib.metadata
import os
import sys
import tempfile

import tensorzero

CONFIG = """\
[gateway]
observability.enabled = false

[models.{model}]
routing = ["backend"]

[models.{model}.providers.backend]
type = "openai"
model_name = "{model}"
api_base = "{api_base}"
api_key_location = "none"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-base", required=True, help="the OpenAI backend, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", default="mock", help="the model name (TensorZero's and the backend's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tensorzero-") as tmp:
        config = os.path.join(tmp, "tensorzero.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(CONFIG.format(model=args.model, api_base=args.api_base.rstrip("/") + "/"))
        gateway = tensorzero._start_http_gateway(
            config_file=config,
            clickhouse_url=None,
            postgres_url=None,
            valkey_url=None,
            async_setup=False,
        )
        version = importlib.metadata.version("tensorzero")
        print(f"TENSORZERO_BASE_URL {gateway.base_url} {version}", flush=True)
        # Serve until whoever started us goes away (stdin closes).
        sys.stdin.read()
        gateway.close()


if __name__ == "__main__":
    main()
