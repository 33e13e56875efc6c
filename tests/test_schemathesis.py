"""The public API fuzzed from its own description: schemathesis reads the gateway's merged
OpenAPI document and sends generated requests (the schema's examples, the boundary and
wrong-typed values of its coverage phase, then random ones, valid and invalid, with NUL,
non-ASCII text and integers past int64 mixed in) with a signed-in user's token, through the
gateway to the real auth, chat and export processes.
Whatever a client sends, no answer may be a 5xx (issue 11: "0 responses >= 500").

Bounded to stay within a few minutes on two cores: a few examples per operation, a fixed seed
(the same requests every run, so a failure is reproducible), a timeout on every request, and
no `max-time` (with one, schemathesis keeps fuzzing until it is spent). Every 5xx, and every
request that got no answer, is collected with its method, path, body and answer, and reported
by operation with the smallest reproducers and the errors the services logged.

Schemathesis runs in-process through its engine (what `st run` drives), configured with the
keys of its documented config file; `PARLEY_FUZZ_EXAMPLES` raises the examples for a deeper
run."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import schemathesis
from schemathesis.engine import events, from_schema

from parley.testing import unique_name

if TYPE_CHECKING:
    from tests.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "correct horse battery"
EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "50"))
# NUL, non-ASCII text; integers just past int32 and int64 and far beyond. (Lone surrogates
# cannot be given: schemathesis checks these values with a validator that needs UTF-8.)
HOSTILE_STRINGS = ["\x00", "x\x00y", "é🙂", "\u202e", " "]
HUGE_INTEGERS = [2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30]
# What would end the run's own session: the user must stay signed in for every request.
SPARED = (("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/auth/me"))


@dataclass
class Failure:
    """One request the API answered with a 5xx, or did not answer."""

    operation: str
    method: str
    url: str
    body: str
    status: int | str
    answer: str
    request_id: str | None = None
    log_lines: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"{self.operation}: {self.method} {self.url} -> {self.status}",
            f"  body:   {self.body[:600]}",
            f"  answer: {self.answer[:300]}",
        ]
        lines += [f"  log: {line[:800]}" for line in self.log_lines[:8]]
        return "\n".join(lines)


def signed_in(gateway: str) -> str:
    """A new user's access token, through the gateway."""
    email = f"{unique_name('fuzz')}@example.com"
    response = httpx.post(
        gateway + "/api/v1/auth/register",
        timeout=30,
        json={"email": email, "password": PASSWORD, "name": "Fuzz"},
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["data"]["tokens"]["access_token"]
    return token


def seed(gateway: str, token: str) -> None:
    """A little of everything, so generated requests also meet existing rows (ids such as
    `c1` are ones a generator may well produce)."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway, headers=auth, timeout=30) as client:
        for path, body in (
            ("/api/v1/folders", {"id": "f1", "title": "Folder"}),
            ("/api/v1/chats", {"id": "c1", "title": "Chat", "folder_id": "f1"}),
            ("/api/v1/chats/c1/messages", {"id": "m1", "role": "user", "content": "hi"}),
            ("/api/v1/memories", {"id": "r1", "question": "Name?", "answer": "Ada"}),
        ):
            response = client.post(path, json=body)
            assert response.status_code in (200, 201), (path, response.text)


def fuzz_config(gateway: str, token: str) -> schemathesis.Config:
    """The run's settings, in the keys of schemathesis' config file (schemathesis.toml)."""
    return schemathesis.Config.from_dict(
        {
            "base-url": gateway,
            "headers": {"Authorization": f"Bearer {token}"},
            "seed": 20261205,
            "workers": 1,
            "request-timeout": 15,
            "continue-on-failure": True,
            "cache": {"enabled": False},  # what one run learned must not change the next
            # values that broke services before, mixed into what is generated
            "dictionaries": {
                "hostile-strings": {"values": HOSTILE_STRINGS},
                "huge-integers": {"values": HUGE_INTEGERS},
            },
            "generation": {
                "max-examples": EXAMPLES,
                "database": "none",
                "dictionaries": {
                    "string": {"dictionary": "hostile-strings", "probability": 0.1},
                    "integer": {"dictionary": "huge-integers", "probability": 0.1},
                },
            },
            "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )


def server_errors(stream: Any) -> tuple[list[Failure], int]:
    """Every 5xx or unanswered request of an engine run, and how many requests it sent."""
    failures: dict[tuple[str, str, str], Failure] = {}
    sent = 0
    for event in stream:
        if isinstance(event, events.NonFatalError):
            failures[(event.label, type(event.value).__name__, "")] = Failure(
                event.label, "", "", "", "no answer", f"{event.info.title}: {event.value}"
            )
            continue
        if not isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            continue
        for case_id, interaction in event.recorder.interactions.items():
            sent += 1
            response = interaction.response
            if response is None or response.status_code < 500:
                continue
            request = interaction.request
            body = (request.body or b"").decode(errors="backslashreplace")
            node = event.recorder.cases.get(case_id)
            operation = node.value.operation.label if node is not None else event.recorder.label
            ids = response.headers.get("x-request-id") or [None]
            failures.setdefault(
                (request.method, request.uri, body),
                Failure(
                    operation,
                    request.method,
                    request.uri,
                    body,
                    response.status_code,
                    response.content.decode(errors="replace"),
                    ids[0],
                ),
            )
    return list(failures.values()), sent


def logged_for(logs: dict[str, str], request_id: str | None) -> list[str]:
    """The services' log lines that name this request."""
    if not request_id:
        return []
    return [
        f"{name}: {error_summary(line) or line}"
        for name, text in logs.items()
        for line in text.splitlines()
        if request_id in line
    ]


def error_summary(line: str) -> str | None:
    """An "unhandled error" log line as the innermost frame of our own code and the
    exception's first line; None for any other line."""
    if not line.startswith("{") or '"unhandled error"' not in line:
        return None
    try:
        traceback = str(json.loads(line).get("exception") or "")
    except ValueError:
        return None
    lines = traceback.splitlines()
    frames = [i for i, f in enumerate(lines) if f.strip().startswith("File ")]
    ours = [lines[i].strip() for i in frames if "/src/" in lines[i]] or ["?"]
    after = lines[frames[-1] + 1 :] if frames else lines
    exception = next((x for x in after if x and not x.startswith(" ")), "?")
    return f"{ours[-1]}\n    {exception[:300]}"


def logged_errors(logs: dict[str, str]) -> Counter[str]:
    """The unhandled errors the services logged (see `error_summary`), counted."""
    found: Counter[str] = Counter()
    for name, text in logs.items():
        for line in text.splitlines():
            summary = error_summary(line)
            if summary is not None:
                found[f"{name.split('-')[0]}: {summary}"] += 1
    return found


def report(failures: list[Failure], sent: int, errors: Counter[str]) -> str:
    """The failures by operation and status, the shortest three bodies of each (the smallest
    reproducers), then the errors the services logged."""
    groups: dict[tuple[str, int | str], list[Failure]] = {}
    for failure in failures:
        groups.setdefault((failure.operation, failure.status), []).append(failure)
    parts = [
        f"{len(failures)} of {sent} generated requests got a 5xx or no answer, "
        f"in {len(groups)} groups (operation, status):"
    ]
    for (operation, status), group in sorted(groups.items(), key=lambda g: str(g[0])):
        parts.append(f"\n=== {operation} -> {status}: {len(group)} requests")
        parts += [f.report() for f in sorted(group, key=lambda f: len(f.body) + len(f.url))[:3]]
    parts.append(
        "\n=== unhandled errors in the service logs (count, service: our innermost "
        "frame, exception):"
    )
    parts += [f"{count} x {error}" for error, count in errors.most_common(20)]
    return "\n".join(parts)


def test_no_generated_request_gets_a_5xx_from_the_public_api(stack: Stack) -> None:
    token = signed_in(stack.gateway)
    seed(stack.gateway, token)
    schema = schemathesis.openapi.from_url(
        stack.gateway + "/api/v1/openapi.json", config=fuzz_config(stack.gateway, token), timeout=30
    )
    schema = schema.include(path_regex="^/api/v1/")
    for method, path in SPARED:
        schema = schema.exclude(method=method, path=path)
    operations = [r.ok().label for r in schema.get_all_operations()]
    assert len(operations) > 40, operations  # the merged document really describes the API

    failures, sent = server_errors(from_schema(schema).execute())

    assert sent > 10 * len(operations), sent
    logs = stack.logs()
    for failure in failures:
        failure.log_lines = logged_for(logs, failure.request_id)
    assert not failures, report(failures, sent, logged_errors(logs))
