"""Pull's cursor, the merge of the owners' pages, and the digest."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from pydantic_core import from_json

from contracts.feed import FeedLines, change_line
from servicekit.responses import Ok
from sync.changes.domain import Cursor, InvalidCursor, digest, merge
from sync.changes.schemas import PulledPage, PullMeta, PullOut
from sync.mutations.schemas import MutationResult


def page(changes: list[tuple[str, str, int]], has_more: bool, last_seq: int) -> FeedLines:
    """An owner's page of (entity, id, seq) puts."""
    lines = [change_line(entity, id_, "put", 1) for entity, id_, _ in changes]
    return FeedLines(lines, [seq for _, _, seq in changes], has_more, last_seq)


def test_a_cursor_round_trips_and_is_opaque_base64url_json() -> None:
    cursor = Cursor(chat=12, auth=3, sync=7, at=1_700_000_000)
    text = cursor.encode()
    assert "=" not in text
    assert "+" not in text
    assert "/" not in text
    padded = text + "=" * (-len(text) % 4)
    assert json.loads(base64.urlsafe_b64decode(padded)) == {
        "chat": 12,
        "auth": 3,
        "sync": 7,
        "at": 1_700_000_000,
    }
    assert Cursor.decode(text) == cursor
    assert Cursor.decode("") == Cursor() == Cursor.decode(None)


def encoded(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        "not base64 at all!",
        encoded([1, 2]),
        encoded({"chat": 1, "auth": 1, "sync": 1}),
        encoded({"chat": 1, "auth": 1, "sync": -1, "at": 0}),
        encoded({"chat": "1", "auth": 1, "sync": 1, "at": 0}),
        encoded({"chat": True, "auth": 1, "sync": 1, "at": 0}),
        encoded({"chat": 1, "auth": 1, "sync": 1, "at": 0, "x": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_a_malformed_cursor_is_refused(text: str) -> None:
    with pytest.raises(InvalidCursor):
        Cursor.decode(text)


def test_a_cursor_expires_past_the_retention_and_the_empty_one_never() -> None:
    assert Cursor(at=1000).expired(now_s=1000 + 60, retention_s=30)
    assert not Cursor(at=1000).expired(now_s=1000 + 30, retention_s=30)
    assert not Cursor().expired(now_s=10**10, retention_s=1)


def test_merge_fills_the_page_in_owner_order_and_moves_each_position_to_what_it_handed_out() -> (
    None
):
    pages = {
        "chat": page([("message", "m1", 4), ("message", "m2", 9)], False, 9),
        "auth": page([("preferences", "me", 2)], False, 2),
        "sync": page([("document", "d1", 5), ("document", "d2", 6)], True, 6),
    }
    first = merge(pages, Cursor(chat=1, auth=1, sync=1), limit=4, now_s=77)
    # the owners' lines as they came, in order
    assert first.changes == [*pages["chat"].lines, *pages["auth"].lines, pages["sync"].lines[0]]
    assert [from_json(c)["id"] for c in first.changes] == ["m1", "m2", "me", "d1"]
    assert first.has_more
    assert first.cursor == Cursor(chat=9, auth=2, sync=5, at=77)


def test_merge_keeps_a_position_when_nothing_of_that_owner_fit() -> None:
    pages = {
        "chat": page([("message", "m1", 4)], False, 4),
        "auth": page([("preferences", "me", 8)], False, 8),
        "sync": page([], False, 3),
    }
    merged = merge(pages, Cursor(chat=1, auth=5, sync=3), limit=1, now_s=5)
    assert merged.has_more
    assert merged.cursor == Cursor(chat=4, auth=5, sync=3, at=5)


def test_an_owner_with_nothing_new_keeps_its_position() -> None:
    pages = {"chat": page([], False, 0), "sync": page([], False, 0)}
    merged = merge(pages, Cursor(chat=7, sync=2), limit=10, now_s=5)
    assert merged.changes == []
    assert not merged.has_more
    assert merged.cursor == Cursor(chat=7, sync=2, at=5)


def test_the_digest_is_sha256_of_sorted_lines_whatever_the_order() -> None:
    records = [("message", "m1", 3), ("conversation", "c1", 2), ("document", "todos/t1", 1)]
    count, hexdigest = digest(records)
    lines = b"conversation|c1|2\ndocument|todos/t1|1\nmessage|m1|3\n"
    assert (count, hexdigest) == (3, hashlib.sha256(lines).hexdigest())
    assert digest(reversed(records)) == (count, hexdigest)
    assert digest([]) == (0, hashlib.sha256(b"").hexdigest())


@pytest.mark.parametrize("with_changes", [True, False])
def test_a_pull_answer_is_the_success_body_with_the_owners_changes_as_they_came(
    with_changes: bool,
) -> None:
    lines = [
        change_line("message", "m1", "put", 1, {"content": "hi\n", "parent_id": None}),
        change_line("document", "t1", "delete", 2, collection="todos"),
    ]
    lines = lines if with_changes else []
    meta = PullMeta(
        cursor="abc",
        has_more=with_changes,
        last_mids={"phone": 3},
        results=[MutationResult(mid=3, status="applied", version=2)],
    )
    body = PulledPage(lines, meta).body()

    assert json.loads(body) == {
        "success": True,
        "data": {
            "changes": [json.loads(line) for line in lines],
            "cursor": "abc",
            "has_more": with_changes,
            "last_mids": {"phone": 3},
            "results": [{"mid": 3, "status": "applied", "version": 2}],
        },
    }
    Ok[PullOut].model_validate_json(body)  # the schema OpenAPI shows
