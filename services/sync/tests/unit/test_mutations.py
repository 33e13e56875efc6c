"""Sync's checks of a device mutation: entities, ids, clocks, and the stamp owners merge by."""

from __future__ import annotations

from typing import Any

import pytest

from sync.mutations.domain import Hlc, Rejected, check, result_of

NOW_MS = 1_700_000_000_000
SKEW_MS = 300_000


def mutation(**fields: Any) -> dict[str, Any]:
    base = {
        "mid": 1,
        "entity": "conversation",
        "op": "put",
        "id": "c1",
        "data": {"title": "hi"},
        "hlc": f"{NOW_MS}-0",
    }
    return {**base, **fields}


def rejected(m: dict[str, Any], client_id: str = "phone") -> str:
    with pytest.raises(Rejected) as caught:
        check(m, client_id, NOW_MS, SKEW_MS)
    return caught.value.code


def test_the_stamp_compares_like_the_clock_then_the_client_id() -> None:
    early = Hlc.parse("999-7").stamp("b")
    later = Hlc.parse("1000-0").stamp("a")
    assert early == "000000000000999:00007:b"
    assert early < later  # 999 ms < 1000 ms although "999" > "1000" as text
    assert Hlc.parse("1000-1").stamp("a") > later  # the counter orders the same millisecond
    assert Hlc.parse("1000-0").stamp("b") > later  # a tie goes to the greater client id


@pytest.mark.parametrize("hlc", ["", "1700000000000", "17-x", "-1-0", "1-123456", 1700, None])
def test_a_clock_that_is_not_unix_ms_dash_counter_is_a_validation_error(hlc: object) -> None:
    assert rejected(mutation(hlc=hlc)) == "VALIDATION_ERROR"


def test_a_clock_more_than_five_minutes_ahead_is_clock_skew() -> None:
    assert rejected(mutation(hlc=f"{NOW_MS + SKEW_MS + 1}-0")) == "CLOCK_SKEW"
    ahead = check(mutation(hlc=f"{NOW_MS + SKEW_MS}-0"), "phone", NOW_MS, SKEW_MS)
    assert ahead.stamp == f"{NOW_MS + SKEW_MS:015d}:00000:phone"
    behind = check(mutation(hlc="1-0"), "phone", NOW_MS, SKEW_MS)  # old clocks are fine
    assert behind.stamp == "000000000000001:00000:phone"


def test_unknown_entities_ops_and_bad_ids_are_refused_with_their_code() -> None:
    assert rejected(mutation(entity="todo")) == "UNKNOWN_ENTITY"
    assert rejected(mutation(op="upsert")) == "VALIDATION_ERROR"
    assert rejected(mutation(id="x" * 65)) == "VALIDATION_ERROR"
    assert rejected(mutation(id="-leading-dash")) == "VALIDATION_ERROR"
    assert rejected(mutation(id=42)) == "VALIDATION_ERROR"
    assert rejected(mutation(entity="preferences", id="settings")) == "VALIDATION_ERROR"
    assert check(mutation(id="x" * 64), "phone", NOW_MS, SKEW_MS).id == "x" * 64


def test_each_op_needs_its_own_body() -> None:
    assert rejected(mutation(op="put", data=None)) == "VALIDATION_ERROR"
    assert rejected(mutation(op="put", data=[1, 2])) == "VALIDATION_ERROR"
    assert rejected(mutation(op="patch", fields={})) == "VALIDATION_ERROR"
    assert rejected(mutation(op="put", data={"t": "nul\x00"})) == "VALIDATION_ERROR"
    assert rejected(mutation(base_version=-1)) == "VALIDATION_ERROR"
    assert rejected(mutation(base_version=True)) == "VALIDATION_ERROR"
    deleted = check(mutation(op="delete", data=None), "phone", NOW_MS, SKEW_MS)
    assert (deleted.data, deleted.fields) == (None, None)


def test_only_documents_have_a_collection_and_every_document_has_one() -> None:
    assert rejected(mutation(entity="document")) == "VALIDATION_ERROR"
    assert rejected(mutation(entity="document", collection="bad collection")) == "VALIDATION_ERROR"
    assert rejected(mutation(collection="todos")) == "VALIDATION_ERROR"
    document = check(mutation(entity="document", collection="todos"), "p", NOW_MS, SKEW_MS)
    assert (document.owner, document.collection) == ("sync", "todos")
    assert check(mutation(entity="preferences", id="me"), "p", NOW_MS, SKEW_MS).owner == "auth"
    assert check(mutation(entity="message"), "p", NOW_MS, SKEW_MS).owner == "chat"


def test_a_result_leaves_out_what_does_not_apply() -> None:
    assert result_of(3, "applied", {"version": 2, "current": None}) == {
        "mid": 3,
        "status": "applied",
        "version": 2,
    }
    assert result_of(4, "pending", {}, replayed=True) == {
        "mid": 4,
        "status": "pending",
        "replayed": True,
    }
