"""Schemathesis hooks for scripts/schemathesis.sh.

The OpenAPI document cannot say that `roles` and `messages` of a chat request have the same
length, so most generated bodies would stop at the 400 for that rule and never reach a worker.
This hook pads the shorter list of the two (only when both are non-empty lists, and only by
adding valid entries), so generated requests go through the whole pipe. It never removes
anything, so a body that breaks a documented rule still breaks it (negative cases stay
negative).
"""

import json

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    # Every phase (the coverage phase does not go through generation hooks such as map_body).
    body = case.body
    if not isinstance(body, dict):
        return
    roles, messages = body.get("roles"), body.get("messages")
    if isinstance(roles, list) and isinstance(messages, list) and roles and messages:
        if len(roles) < len(messages):
            body["roles"] = roles + ["user"] * (len(messages) - len(roles))
        elif len(messages) < len(roles):
            body["messages"] = messages + ["hello"] * (len(roles) - len(messages))


@schemathesis.deserializer("application/x-ndjson")
def ndjson(ctx, response):
    """A streamed answer: every line an event numbered from 1, exactly one terminal event
    (finish_reason "finished" or "error"), and it comes last. Returns that terminal event, which
    Schemathesis validates against the documented schema of one line."""
    lines = [line for line in response.content.decode("utf-8").split("\n") if line.strip()]
    if not lines:
        raise ValueError("an empty stream")
    events = [json.loads(line) for line in lines]
    for number, event in enumerate(events, start=1):
        if event.get("sequence_number") != number:
            raise ValueError(f"event {number} has sequence_number {event.get('sequence_number')}")
        terminal = event.get("finish_reason") in ("finished", "error")
        if terminal != (number == len(events)):
            raise ValueError(f"event {number} of {len(events)}: finish_reason {event.get('finish_reason')!r}")
    return events[-1]
