"""The merge rules of app documents: content conflicts on a moved base, fields merge by the
later clock, a delete wins, creates are idempotent, sizes are bounded."""

from __future__ import annotations

from typing import Any

from sync.documents.domain import Outcome, Stored, apply

T1, T2, T3 = "000000000000001:00000:a", "000000000000002:00000:a", "000000000000003:00000:b"
LIMIT = 1000


def stored(data: dict[str, Any], clock: str = T2, version: int = 3) -> Stored:
    return Stored(data=data, clocks=dict.fromkeys(data, clock), version=version, deleted=False)


def put(s: Stored | None, data: dict[str, Any], stamp: str = T3, **kw: Any) -> Outcome:
    return apply(s, "put", data=data, stamp=stamp, max_bytes=LIMIT, **kw)


def patch(s: Stored | None, fields: dict[str, Any], stamp: str = T3, **kw: Any) -> Outcome:
    return apply(s, "patch", fields=fields, stamp=stamp, max_bytes=LIMIT, **kw)


def test_a_new_document_is_version_one_with_a_clock_per_field() -> None:
    outcome = put(None, {"title": "milk", "done": False})
    assert (outcome.status, outcome.version, outcome.new_version) == ("applied", 1, True)
    assert outcome.clocks == {"title": T3, "done": T3}


def test_a_put_of_the_same_content_is_applied_without_a_new_version() -> None:
    outcome = put(stored({"title": "milk"}), {"title": "milk"}, base_version=1)
    assert (outcome.status, outcome.version, outcome.write) == ("applied", 3, False)


def test_a_moved_base_version_is_a_conflict_with_the_current_record() -> None:
    current = stored({"title": "milk"})
    for outcome in (
        put(current, {"title": "oat milk"}, base_version=2),
        patch(current, {"title": "oat milk"}, base_version=2),
    ):
        assert (outcome.status, outcome.version, outcome.data) == ("conflict", 3, {"title": "milk"})
        assert not outcome.write
    assert patch(current, {"title": "oat milk"}, base_version=3).status == "applied"


def test_fields_merge_one_by_one_and_the_later_clock_wins() -> None:
    current = Stored(
        data={"title": "milk", "done": True},
        clocks={"title": T1, "done": T3},
        version=3,
        deleted=False,
    )
    outcome = patch(current, {"title": "oat milk", "done": False}, stamp=T2)
    assert outcome.data == {"title": "oat milk", "done": True}  # done was written later
    assert (outcome.version, outcome.merged) == (4, True)
    assert outcome.clocks == {"title": T2, "done": T3}


def test_an_equal_clock_does_not_overwrite_and_nothing_won_means_no_new_version() -> None:
    current = stored({"title": "milk"}, clock=T3)
    outcome = patch(current, {"title": "tea"}, stamp=T3)
    assert (outcome.data, outcome.version, outcome.new_version) == ({"title": "milk"}, 3, False)
    assert outcome.merged


def test_a_put_replaces_the_record_fields_it_leaves_out_are_removed_unless_newer() -> None:
    current = Stored(
        data={"title": "milk", "note": "2%", "tag": "x"},
        clocks={"title": T1, "note": T1, "tag": T3},
        version=1,
        deleted=False,
    )
    outcome = put(current, {"title": "oat milk"}, stamp=T2)
    assert outcome.data == {"title": "oat milk", "tag": "x"}
    assert outcome.clocks["note"] == T2  # the removal keeps its clock


def test_a_newer_clock_on_the_same_value_is_kept_without_a_new_version() -> None:
    outcome = patch(stored({"title": "milk"}, clock=T1), {"title": "milk"}, stamp=T3)
    assert (outcome.write, outcome.new_version, outcome.clocks) == (True, False, {"title": T3})


def test_delete_wins_edits_of_a_tombstone_are_rejected_deleting_again_is_applied() -> None:
    deleted = apply(stored({"title": "milk"}), "delete", stamp=T1, max_bytes=LIMIT)
    assert (deleted.status, deleted.version, deleted.deleted) == ("applied", 4, True)
    tombstone = Stored(data=None, clocks={}, version=4, deleted=True)
    assert put(tombstone, {"title": "x"}).error == {
        "code": "DELETED",
        "message": "the document was deleted",
    }
    assert patch(tombstone, {"title": "x"}).status == "rejected"
    again = apply(tombstone, "delete", stamp=T3, max_bytes=LIMIT)
    assert (again.status, again.version, again.write) == ("applied", 4, False)
    assert apply(None, "delete", stamp=T3, max_bytes=LIMIT).status == "applied"


def test_a_patch_of_a_missing_document_and_an_oversized_one_are_rejected() -> None:
    assert patch(None, {"a": 1}).error is not None
    assert patch(None, {"a": 1}).error["code"] == "NOT_FOUND"  # type: ignore[index]
    big = {"blob": "x" * LIMIT}
    assert put(None, big).error["code"] == "PAYLOAD_TOO_LARGE"  # type: ignore[index]
    grown = patch(stored({"a": "small"}), big)
    assert grown.error is not None
    assert grown.error["code"] == "PAYLOAD_TOO_LARGE"
