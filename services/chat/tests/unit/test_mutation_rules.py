"""The pure rules of applying a device mutation (chat.mutations.domain) and the per-field
last-writer-wins they rely on (servicekit.clock.fields_to_apply)."""

from __future__ import annotations

import pytest

from chat.domain import created_clocks
from chat.mutations.domain import Refusal, Step, content_moved, same_content, step_for
from servicekit.clock import fields_to_apply


def stamp(ms: int, counter: int, client: str) -> str:
    return f"{ms:015d}:{counter:05d}:{client}"


@pytest.mark.parametrize(
    ("op", "exists", "deleted", "expected"),
    [
        ("put", False, False, Step.CREATE),
        ("put", True, False, Step.UPDATE),
        ("patch", True, False, Step.UPDATE),
        ("delete", True, False, Step.DELETE),
        ("delete", False, False, Step.DELETE),  # the service answers NOT_FOUND
        ("delete", True, True, Step.ALREADY_DELETED),
    ],
)
def test_what_a_mutation_does_to_the_row_it_names(
    op: str, exists: bool, deleted: bool, expected: Step
) -> None:
    assert step_for("folder", op, exists=exists, deleted=deleted) is expected


def test_a_message_put_of_a_stored_id_compares_content_instead_of_merging() -> None:
    assert step_for("message", "put", exists=True, deleted=False) is Step.SAME_MESSAGE
    assert step_for("message", "put", exists=False, deleted=False) is Step.CREATE


def test_delete_wins_over_later_edits_and_puts() -> None:
    for op in ("put", "patch"):
        refused = step_for("conversation", op, exists=True, deleted=True)
        assert isinstance(refused, Refusal)
        assert refused.code == "DELETED"


def test_a_patch_of_an_unknown_id_and_a_foreign_entity_are_refused() -> None:
    missing = step_for("memory", "patch", exists=False, deleted=False)
    assert isinstance(missing, Refusal)
    assert missing.code == "NOT_FOUND"
    foreign = step_for("preferences", "put", exists=False, deleted=False)
    assert isinstance(foreign, Refusal)
    assert foreign.code == "UNKNOWN_ENTITY"
    assert foreign.error() == {"code": "UNKNOWN_ENTITY", "message": foreign.message}


def test_only_a_text_edit_on_an_old_version_conflicts() -> None:
    assert content_moved({"content": "x"}, 2, 3)
    assert content_moved({"full_content": "x"}, 2, 3)  # the apps' name of the text
    assert content_moved({"parts": []}, 1, 2)
    assert not content_moved({"content": "x"}, 3, 3)
    assert not content_moved({"content": "x"}, None, 3)  # apps that never knew versions
    assert not content_moved({"status": "failed", "metadata": {}}, 1, 3)


def test_same_content_treats_no_parts_and_empty_parts_alike() -> None:
    assert same_content("hi", None, "hi", [])
    assert same_content("hi", [{"type": "x"}], "hi", [{"type": "x"}])
    assert not same_content("hi", None, "hello", None)
    assert not same_content("hi", [{"type": "x"}], "hi", None)


def test_each_field_goes_to_its_latest_writer_and_ties_to_the_greater_client() -> None:
    clocks = {"title": stamp(100, 0, "phone"), "tags": stamp(300, 0, "phone")}
    accepted, after = fields_to_apply(
        clocks, {"title": "new", "tags": ["old"]}, stamp(200, 0, "laptop")
    )
    assert accepted == {"title": "new"}  # tags were written later by the phone
    assert after == {"title": stamp(200, 0, "laptop"), "tags": stamp(300, 0, "phone")}
    # the same instant: the greater client id wins, whichever arrives first
    tie = {"title": stamp(100, 0, "b-client")}
    assert fields_to_apply(tie, {"title": "a"}, stamp(100, 0, "a-client"))[0] == {}
    assert fields_to_apply(tie, {"title": "c"}, stamp(100, 0, "c-client"))[0] == {"title": "c"}
    assert fields_to_apply(tie, {"title": "d"}, stamp(100, 1, "a-client"))[0] == {"title": "d"}


def test_a_device_create_clocks_its_fields_a_rest_create_does_not() -> None:
    assert created_clocks(["title", "tags"], stamp(5, 0, "x")) == {
        "title": stamp(5, 0, "x"),
        "tags": stamp(5, 0, "x"),
    }
    assert created_clocks(["title"], None) == {}
