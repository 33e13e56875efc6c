"""The snapshot test: the committed schemas match the code, and only additive changes pass."""

from __future__ import annotations

import copy
import json
from typing import ClassVar, Literal

import pytest

from contracts import compatibility
from contracts.envelope import EventPayload
from contracts.topics import Topic


def test_committed_snapshot_matches_the_code() -> None:
    committed = json.loads(compatibility.SNAPSHOT_PATH.read_text())
    assert compatibility.breaking_changes(committed, compatibility.snapshot()) == []
    assert committed == json.loads(json.dumps(compatibility.snapshot(), sort_keys=True)), (
        "run `python -m contracts.compatibility --write` after an additive change"
    )


class Before(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    count: int = 0
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []


def _snap(*models: type[EventPayload]) -> compatibility.Schema:
    return compatibility.snapshot([Topic("test.thing.v1", models)])


class Additive(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    count: int = 0
    kind: Literal["a", "b", "c"] = "a"  # enum value added
    tags: list[str] = []
    note: str | None = None  # optional field added


class AnotherEvent(EventPayload):
    event_type: ClassVar[str] = "thing.undone"
    name: str


def test_additive_changes_pass() -> None:
    assert compatibility.breaking_changes(_snap(Before), _snap(Additive, AnotherEvent)) == []


class Removed(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []


class Renamed(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    title: str
    count: int = 0
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []


class Retyped(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    count: str = "0"
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []


class MadeRequired(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    count: int
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []


class EnumShrunk(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    count: int = 0
    kind: Literal["a"] = "a"
    tags: list[str] = []


class ItemRetyped(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    count: int = 0
    kind: Literal["a", "b"] = "a"
    tags: list[int] = []


class NewRequired(EventPayload):
    event_type: ClassVar[str] = "thing.happened"
    name: str
    count: int = 0
    kind: Literal["a", "b"] = "a"
    tags: list[str] = []
    owner: str


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (Removed, "count: field removed or renamed"),
        (Renamed, "name: field removed or renamed"),
        (Retyped, "count: type changed"),
        (MadeRequired, "count: optional field made required"),
        (EnumShrunk, "kind: enum values removed"),
        (ItemRetyped, "tags[]: type changed"),
        (NewRequired, "owner: new field is required"),
    ],
)
def test_breaking_changes_fail(model: type[EventPayload], expected: str) -> None:
    problems = compatibility.breaking_changes(_snap(Before), _snap(model))
    assert any(expected in p for p in problems), problems


def test_removing_an_event_or_topic_is_breaking() -> None:
    old = _snap(Before, AnotherEvent)
    assert compatibility.breaking_changes(old, _snap(Before)) == [
        "test.thing.v1: event thing.undone was removed"
    ]
    empty = copy.deepcopy(old)
    empty["topics"] = {}
    assert compatibility.breaking_changes(old, empty) == ["topic test.thing.v1 was removed"]


def test_check_command_refuses_a_breaking_change(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys
) -> None:
    path = tmp_path / "snapshot.json"
    before = _snap(Before)
    path.write_text(json.dumps(before))
    retyped = _snap(Retyped)
    monkeypatch.setattr(compatibility, "SNAPSHOT_PATH", path)
    monkeypatch.setattr(compatibility, "snapshot", lambda: retyped)
    assert compatibility.main(["--write"]) == 1
    assert "count: type changed" in capsys.readouterr().out
    assert json.loads(path.read_text()) == before  # nothing written
