"""The owners' feed lines: a change as pull shows it, a page that round-trips with each
change's seq, and what is refused as not a page."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from contracts.events.chat import FolderChanged
from contracts.feed import FeedLines, change_line

NOW = datetime(2026, 12, 6, 2, 30, 0, 123456, tzinfo=UTC)


def test_a_change_is_the_object_pull_shows_and_a_tombstone_has_no_data() -> None:
    put = change_line("message", "m1", "put", 2, {"content": "a\nb", "at": NOW, "x": None})
    assert b"\n" not in put  # one change, one line, whatever its text holds
    assert json.loads(put) == {
        "entity": "message",
        "id": "m1",
        "op": "put",
        "version": 2,
        "data": {"content": "a\nb", "at": "2026-12-06T02:30:00.123456Z", "x": None},
    }
    tombstone = change_line("document", "t1", "delete", 3, collection="todos")
    assert list(json.loads(tombstone)) == ["entity", "id", "collection", "op", "version"]
    # an event's model serialises as its payload does
    event = FolderChanged(folder_id="f1", version=1, title="Work", updated_at=NOW)
    assert json.loads(change_line("folder", "f1", "put", 1, event))["data"] == event.model_dump(
        mode="json"
    )


def test_a_page_round_trips_with_each_changes_seq() -> None:
    lines = [
        change_line("folder", "f1", "put", 1, {"title": "t"}),
        change_line("memory", "k", "delete", 2),
    ]
    page = FeedLines(lines, [4, 9], has_more=True, last_seq=9)
    body = page.encode()
    assert body.endswith(b"\n")
    assert body.count(b"\n") == 3  # the header, then a line each
    assert FeedLines.decode(body) == page
    assert page.records() == [
        {
            "entity": "folder",
            "id": "f1",
            "op": "put",
            "version": 1,
            "data": {"title": "t"},
            "seq": 4,
        },
        {"entity": "memory", "id": "k", "op": "delete", "version": 2, "seq": 9},
    ]
    empty = FeedLines([], [], has_more=False, last_seq=7)
    assert FeedLines.decode(empty.encode()) == empty


LINE = change_line("folder", "f1", "put", 1)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>bad gateway</html>",
        b'{"has_more":false,"last_seq":1,"seqs":[1]}\n' + LINE,  # cut short: no last newline
        b'{"has_more":false,"last_seq":1,"seqs":[1,2]}\n' + LINE + b"\n",  # a seq too many
        b'{"has_more":false,"last_seq":1,"seqs":[]}\n' + LINE + b"\n",  # a line too many
        b'{"has_more":0,"last_seq":1,"seqs":[1]}\n' + LINE + b"\n",
        b'{"has_more":false,"last_seq":"1","seqs":[1]}\n' + LINE + b"\n",
        b'{"has_more":false,"last_seq":1,"seqs":["1"]}\n' + LINE + b"\n",
        b"[false,1,[1]]\n" + LINE + b"\n",
        b'{"has_more":false,"last_seq":1,"seqs":[1]}\n{"id":"f1"}\n',  # not a change
        b'{"has_more":false,"last_seq":1,"seqs":[1]}\n' + LINE[:-1] + b"\n",  # cut inside
    ],
)
def test_what_is_not_a_page_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"feed page|header|seq per|change object"):
        FeedLines.decode(body)
