"""The official `openai` Python SDK, unchanged, against a running gateway (tests/openai_sdk.rs).

Usage: python openai_sdk.py BASE_URL API_KEY LIMITED_KEY. LIMITED_KEY is a managed key allowed
2 requests per minute. Asserts as it goes; prints `K3_REQUEST_ID=<id>` (the request sent with
`extra_body={"sn1": {"k": 3}}`, whose audit row the Rust test checks) and `ALL OK` at the end.
"""

import asyncio
import re
import sys

import openai

base_url, key, limited_key = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
question = "What is 2+2?"
messages = [{"role": "user", "content": question}]
# The simulated miners' answer (simnet/src/miner/config.rs `default_answer`).
answer = re.compile(
    r'Miner (\d+) answers: you asked "What is 2\+2\?"\. This is a simulated reply, streamed in chunks\.'
)

# models.list() and models.retrieve()
ids = [m.id for m in client.models.list()]
assert ids == ["sn1"], ids
assert client.models.retrieve("sn1").id == "sn1"

# Not streamed: a chat.completion with the miner's whole answer and an estimated usage.
done = client.chat.completions.create(model="sn1", messages=messages, temperature=0.2, seed=7)
text = done.choices[0].message.content
assert answer.fullmatch(text), text
assert done.choices[0].finish_reason == "stop"
assert done.object == "chat.completion"
assert done.usage.prompt_tokens == (len(question) + 3) // 4, done.usage
assert done.usage.completion_tokens == (len(text) + 3) // 4, done.usage
assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens

# Streamed: chunks whose deltas make up the answer; usage in a last chunk when asked for.
parts, usage, finish = [], None, None
for chunk in client.chat.completions.create(
    model="sn1",
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": question}]}],
    stream=True,
    stream_options={"include_usage": True},
    max_tokens=50,
):
    assert chunk.object == "chat.completion.chunk"
    if chunk.choices:
        parts.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
streamed = "".join(parts)
assert answer.fullmatch(streamed), streamed
assert len(parts) > 2, parts
assert finish == "stop"
assert usage is not None and usage.completion_tokens == (len(streamed) + 3) // 4, usage


# Async client, streamed.
async def streamed_async():
    aclient = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    out = []
    async for chunk in await aclient.chat.completions.create(model="sn1", messages=messages, stream=True):
        if chunk.choices:
            out.append(chunk.choices[0].delta.content or "")
    return "".join(out)


text = asyncio.run(streamed_async())
assert answer.fullmatch(text), text

# Our knobs travel in extra_body.
raw = client.chat.completions.with_raw_response.create(
    model="sn1", messages=messages, extra_body={"sn1": {"k": 3, "strategy": "first"}}
)
assert answer.fullmatch(raw.parse().choices[0].message.content)
print(f"K3_REQUEST_ID={raw.headers['x-request-id']}", flush=True)


def raises(kind, call, status, code=None, param=None):
    try:
        call()
    except kind as e:
        assert e.status_code == status, (e.status_code, e.body)
        if code is not None:
            assert e.code == code, e.body
        if param is not None:
            assert e.param == param, e.body
        return
    raise AssertionError(f"no {kind.__name__}")


raises(openai.NotFoundError, lambda: client.chat.completions.create(model="gpt-4o", messages=messages), 404, "model_not_found", "model")
raises(openai.NotFoundError, lambda: client.models.retrieve("gpt-4o"), 404, "model_not_found")
wrong = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0)
raises(openai.AuthenticationError, lambda: wrong.chat.completions.create(model="sn1", messages=messages), 401, "invalid_api_key")
raises(openai.AuthenticationError, lambda: wrong.models.list(), 401, "invalid_api_key")
raises(openai.BadRequestError, lambda: client.chat.completions.create(model="sn1", messages=messages, n=2), 400, None, "n")
raises(openai.BadRequestError, lambda: client.chat.completions.create(model="sn1", messages=messages, extra_body={"sn1": {"k": 0}}), 400, None, "sn1.k")


# A managed key with 2 requests per minute: two answers, then RateLimitError with Retry-After.
limited = openai.OpenAI(base_url=f"{base_url}/v1", api_key=limited_key, max_retries=0)
done = limited.chat.completions.create(model="sn1", messages=messages)
assert answer.fullmatch(done.choices[0].message.content), done
assert [m.id for m in limited.models.list()] == ["sn1"]
try:
    limited.chat.completions.create(model="sn1", messages=messages)
    raise AssertionError("a third request within the minute was admitted")
except openai.RateLimitError as e:
    assert e.status_code == 429 and e.code == "rate_limit_exceeded", (e.status_code, e.body)
    assert 1 <= int(e.response.headers["retry-after"]) <= 30, e.response.headers


# A stream that fails part-way (the answer is slower than its timeout) raises, mid-stream.
def failing_stream():
    got = []
    for chunk in client.chat.completions.create(
        model="sn1", messages=messages, stream=True, extra_body={"sn1": {"timeout": 0.1}}
    ):
        got.append(chunk)


try:
    failing_stream()
    raise AssertionError("a stream past its timeout ended without an error")
except openai.APIError as e:
    assert "timeout" in str(e.body) or "timed out" in e.message, (e.message, e.body)

print("ALL OK", flush=True)
