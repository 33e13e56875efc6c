"""The ingest rules without I/O: what a batch stores, skips and reports; what a rollback
removes and keeps."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chat.domain import is_valid_id
from chat.ingest.domain import Imported, parse, plan_batch, plan_rollback
from contracts.ingest import conversation_digest

AT = "2024-05-01T10:00:00.250000+00:00"


def record(kind: str, row_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": kind,
        "id": row_id,
        "version": 1,
        "created_at": AT,
        "updated_at": AT,
        "provenance": {"source": "chatgpt", "source_id": f"src-{row_id}"},
    }
    if kind in ("conversation", "folder"):
        base["title"] = row_id
    if kind == "message":
        base.update(role="user", content=f"text of {row_id}")
    return {**base, **fields}


def test_malformed_records_are_issues_and_the_rest_parses() -> None:
    batch = parse(
        [
            record("conversation", "c1"),
            json.dumps(record("message", "m1", conversation_id="c1")).encode(),
            record("message", "m2", conversation_id="c1", role="wizard"),
            record("message", "m3", conversation_id="c1", content="nul \x00 here"),
            {
                k: v
                for k, v in record("memory", "x1", question="q", answer="a").items()
                if k != "provenance"
            },
            b"{not json",
            record("message", "m4", conversation_id="c1", metadata={"note": "a \x00"}),
            json.dumps(record("message", "m5", conversation_id="c1", parts=[{"t": "\x00"}])),
            record("message", "m6", conversation_id="c1", prompt_tokens=2**40),
            record("message", "m7", conversation_id="c1", model="m" * 201),
            record("message", "m8", conversation_id="c1", content="lone \ud800"),
        ]
    )
    assert [(p.index, p.entity, p.record.id) for p in batch.records] == [
        (0, "conversation", "c1"),
        (1, "message", "m1"),
    ]
    assert [(i.index, i.code) for i in batch.issues] == [
        (2, "INVALID_RECORD"),
        (3, "INVALID_RECORD"),
        (4, "MISSING_PROVENANCE"),
        (5, "INVALID_RECORD"),
        (6, "INVALID_RECORD"),
        (7, "INVALID_RECORD"),
        (8, "INVALID_RECORD"),
        (9, "INVALID_RECORD"),
        (10, "INVALID_RECORD"),
    ]
    assert batch.records[1].provenance.source_id == "src-m1"


def test_column_lengths_apply_to_the_fields_a_record_has() -> None:
    batch = parse(
        [
            record("folder", "f1", color="#" + "f" * 40),
            record("folder", "f2", color="#00f"),
            # fields no column of the kind holds go to metadata.source, whatever they are
            record("message", "m1", conversation_id="c1", color="c" * 40),
            json.dumps(record("message", "m2", conversation_id="c1", color=5)).encode(),
        ]
    )
    assert [(i.index, i.code, i.message) for i in batch.issues] == [
        (0, "INVALID_RECORD", "color: longer than 32 characters")
    ]
    assert [p.record.id for p in batch.records] == ["f2", "m1", "m2"]


def test_a_batch_skips_what_the_user_has_and_checks_what_records_point_at() -> None:
    records = parse(
        [
            record("folder", "f1"),
            record("conversation", "c1", folder_ids=["f1", "f-gone"]),
            record("message", "m1", conversation_id="c1"),
            record("message", "m2", conversation_id="c1", parent_id="m-gone"),
            record(
                "message",
                "m1",
                conversation_id="c1",
                provenance={"source": "chatgpt", "source_id": "other"},
            ),
            record("message", "m3", conversation_id="c-gone"),
            record("message", "m4", conversation_id="c0", parent_id="m0"),  # into a stored chat
            record("memory", "x1", question="q", answer="a"),  # imported before
            record("memory", "x2", question="q", answer="a"),  # the id is the user's own
        ]
    ).records
    plan = plan_batch(
        records,
        known={("chatgpt", "memory", "src-x1"): "x1"},
        existing={
            "conversation": {"c0": (False, None)},
            "message": {"m0": (False, "c0")},
            "memory": {"x2": (False, None)},
        },
    )
    assert [p.record.id for p in plan.accepted] == ["f1", "c1", "m1", "m2", "m4"]
    assert plan.skipped == {"memories": 2}
    assert plan.orphans == {"m2"}
    assert plan.folders == {"c1": ["f1"]}
    assert [(i.id, i.code) for i in plan.issues] == [
        ("c1", "MISSING_FOLDER"),
        ("m2", "MISSING_PARENT"),
        ("m1", "DUPLICATE_ID"),
        ("m3", "MISSING_CONVERSATION"),
        ("x2", "ID_TAKEN"),
    ]


def test_a_rollbacks_tombstones_are_stored_again_with_a_later_version() -> None:
    batch = parse(
        [
            record("conversation", "c1"),
            record("message", "m1", conversation_id="c1", version=7),
            record("message", "m2", conversation_id="c1", parent_id="m1"),
            record("memory", "x1", question="q", answer="a"),
        ]
    )
    existing = {
        "conversation": {"c1": (True, None)},
        "message": {"m1": (True, "c1"), "m2": (True, "c1")},
        "memory": {"x1": (True, None)},  # deleted by the user, not by a rollback
        "folder": {},
    }
    rolled_back = {"conversation": {"c1": 2}, "message": {"m1": 3, "m2": 2}}
    plan = plan_batch(batch.records, {}, existing, rolled_back)
    assert [(p.record.id, p.record.version) for p in plan.accepted] == [
        ("c1", 3),
        ("m1", 7),  # later already
        ("m2", 3),
    ]
    assert plan.revived == {"conversation": ["c1"], "message": ["m1", "m2"]}
    assert [(i.id, i.code) for i in plan.issues] == [("x1", "ID_TAKEN")]
    assert not plan.orphans


def row(entity: str, row_id: str, chat: str | None = None, *, moved: bool = False) -> Imported:
    return Imported(entity, row_id, chat, 2 if moved else 1, 10, False, 1, 10)


def test_rollback_keeps_what_the_user_changed_and_what_holds_it() -> None:
    rows = [
        row("folder", "f1"),
        row("folder", "f2"),
        row("conversation", "c1"),
        row("message", "m1", "c1"),
        row("message", "m2", "c1", moved=True),  # edited since
        row("conversation", "c2"),
        row("message", "m3", "c2"),
        row("conversation", "c3"),  # the user wrote in it since
        row("message", "m4", "c0"),  # added to a chat the import did not create
        row("memory", "x1"),
    ]
    plan = plan_rollback(
        rows, force=False, chats_with_other_rows={"c3"}, folder_chats={"f1": {"c1"}, "f2": {"c2"}}
    )
    assert {r.id for r in plan.remove} == {"f2", "c2", "m3", "m4", "x1"}
    assert {(r.id, why) for r, why in plan.keep} == {
        ("f1", "a chat that stays is in it"),
        ("c1", "a message in it was changed"),
        ("m1", "its conversation keeps it"),
        ("m2", "changed since the import"),
        ("c3", "holds what the user added since"),
    }
    forced = plan_rollback(
        rows, force=True, chats_with_other_rows={"c3"}, folder_chats={"f1": {"c1"}, "f2": {"c2"}}
    )
    assert forced.keep == []
    assert len(forced.remove) == len(rows)


def test_the_conversation_digest_sees_order_parents_times_and_text() -> None:
    t = datetime(2024, 5, 1, 10, tzinfo=UTC)
    messages = [("m1", None, "user", t, "hi"), ("m2", "m1", "assistant", t, "hello")]
    digest = conversation_digest(messages)
    assert digest == conversation_digest(
        [("m1", None, "user", t.replace(tzinfo=None), "hi"), messages[1]]
    )  # zone-less is UTC
    for changed in (
        list(reversed(messages)),
        [messages[0], ("m2", None, "assistant", t, "hello")],
        [messages[0], ("m2", "m1", "assistant", t.replace(microsecond=1), "hello")],
        [messages[0], ("m2", "m1", "assistant", t, "hello!")],
    ):
        assert conversation_digest(changed) != digest


def test_an_id_with_a_trailing_newline_is_not_an_id() -> None:
    for good in ("abc", "a.b:c-d_e"):
        assert is_valid_id(good)
    for bad in ("abc\n", "abc\nd", "", "-abc"):
        assert not is_valid_id(bad)
