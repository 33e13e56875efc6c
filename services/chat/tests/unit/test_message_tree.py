"""The message-tree rules with no I/O (chat.messages.domain): a stored batch's ids, where each
message hangs, retried ids, and where the conversation's leaf ends up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from chat.messages.domain import (
    assign_ids,
    check_batch_size,
    count_new,
    ids_to_load,
    place,
    refuse_foreign,
    token_total,
)
from chat.messages.schemas import MessageIn
from servicekit.errors import Conflict, PayloadTooLarge, ValidationFailed

CHAT = "chat-1"
GONE = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Stored:
    conversation_id: str = CHAT
    deleted_at: datetime | None = None


NONE_STORED: dict[str, Stored] = {}


def follows(**fields: Any) -> MessageIn:
    """A message sent without `parent_id`: it follows the current branch."""
    return MessageIn(role="user", content="hi", **fields)


def under(parent_id: str | None) -> MessageIn:
    return MessageIn(role="user", content="hi", parent_id=parent_id)


def parents(placement: Any) -> dict[str, str | None]:
    return {s.id: s.parent_id for s in placement.new}


# --- ids ---------------------------------------------------------------------------------


def test_given_ids_are_kept_and_missing_ones_made() -> None:
    made = iter(["new-1", "new-2"])
    assert assign_ids(["a", None, "b", None], lambda: next(made)) == ["a", "new-1", "b", "new-2"]


def test_server_made_ids_differ() -> None:
    first, second = assign_ids([None, None])
    assert first != second


def test_an_id_twice_in_a_request_is_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        assign_ids(["a", "b", "a", "c", "c"])
    assert refused.value.details == {"ids": ["a", "c"]}


def test_a_batch_over_the_limit_is_refused() -> None:
    check_batch_size(3, 3)
    with pytest.raises(PayloadTooLarge) as refused:
        check_batch_size(4, 3)
    assert refused.value.details == {"max_messages": 3, "received": 4}


def test_the_ids_to_load_are_the_batch_its_parents_and_the_leaf() -> None:
    incoming = [follows(), under("p"), under(None)]
    assert ids_to_load(["a", "b", "c"], incoming, "leaf") == ["a", "b", "c", "p", "leaf"]
    assert ids_to_load(["a"], [follows()], None) == ["a"]


def test_an_id_used_in_another_chat_is_a_conflict() -> None:
    known = {
        "a": Stored(),
        "b": Stored(conversation_id="other"),
        "c": Stored(conversation_id="other"),
    }
    with pytest.raises(Conflict) as refused:
        refuse_foreign(["a", "b", "c", "d"], known, CHAT)
    assert refused.value.details == {"ids": ["b", "c"]}


def test_ids_of_this_chat_are_not_a_conflict() -> None:
    refuse_foreign(["a", "d"], {"a": Stored()}, CHAT)


def test_only_unknown_ids_are_new() -> None:
    assert count_new(["a", "b", "c"], {"b": Stored(), "x": Stored()}) == 2


# --- placing -----------------------------------------------------------------------------


def test_a_message_without_parent_follows_the_current_leaf() -> None:
    placement = place(["a"], [follows()], {"leaf": Stored()}, CHAT, "leaf")
    assert parents(placement) == {"a": "leaf"}
    assert placement.leaf == "a"


def test_the_first_message_of_an_empty_chat_is_a_root() -> None:
    placement = place(["a"], [follows()], NONE_STORED, CHAT, None)
    assert parents(placement) == {"a": None}
    assert placement.leaf == "a"


def test_parent_null_starts_a_new_root_and_moves_the_leaf() -> None:
    placement = place(["a"], [under(None)], {"leaf": Stored()}, CHAT, "leaf")
    assert parents(placement) == {"a": None}
    assert placement.leaf == "a"


def test_a_batch_follows_itself() -> None:
    placement = place(
        ["a", "b", "c"], [follows(), follows(), follows()], {"leaf": Stored()}, CHAT, "leaf"
    )
    assert parents(placement) == {"a": "leaf", "b": "a", "c": "b"}
    assert placement.leaf == "c"


def test_a_given_parent_starts_a_branch_the_leaf_moves_onto() -> None:
    known = {"old": Stored(), "leaf": Stored()}
    placement = place(["a", "b"], [under("old"), follows()], known, CHAT, "leaf")
    assert parents(placement) == {"a": "old", "b": "a"}
    assert placement.leaf == "b"


def test_a_parent_earlier_in_the_batch_is_accepted() -> None:
    placement = place(
        ["a", "b", "c"], [under(None), follows(), under("a")], NONE_STORED, CHAT, None
    )
    assert parents(placement) == {"a": None, "b": "a", "c": "a"}
    assert placement.leaf == "c"


def test_a_parent_later_in_the_batch_is_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        place(["a", "b"], [under("b"), under(None)], NONE_STORED, CHAT, None)
    assert refused.value.details == {"id": "a", "parent_id": "b"}


def test_a_message_cannot_be_its_own_parent() -> None:
    with pytest.raises(ValidationFailed):
        place(["a"], [under("a")], NONE_STORED, CHAT, None)


def test_a_parent_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        place(["a", "b"], [follows(), under("nowhere")], NONE_STORED, CHAT, None)
    assert refused.value.details == {"id": "b", "parent_id": "nowhere"}


def test_a_parent_in_another_chat_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        place(["a"], [under("p")], {"p": Stored(conversation_id="other")}, CHAT, None)


def test_a_deleted_parent_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        place(["a"], [under("p")], {"p": Stored(deleted_at=GONE)}, CHAT, None)


def test_a_deleted_leaf_is_refused_as_the_parent_of_a_follower() -> None:
    with pytest.raises(ValidationFailed) as refused:
        place(["a"], [follows()], {"leaf": Stored(deleted_at=GONE)}, CHAT, "leaf")
    assert refused.value.details == {"id": "a", "parent_id": "leaf"}


# --- retried ids -------------------------------------------------------------------------


def test_a_retried_id_keeps_the_stored_message() -> None:
    before = Stored()
    placement = place(["a"], [under("somewhere-else")], {"a": before}, CHAT, "leaf")
    assert [s.existing for s in placement.slots] == [before]
    assert placement.new == []


def test_a_batch_of_retries_leaves_the_leaf_where_it_was() -> None:
    placement = place(
        ["a", "b"], [follows(), follows()], {"a": Stored(), "b": Stored()}, CHAT, "leaf"
    )
    assert placement.leaf == "leaf"


def test_a_new_message_after_a_retried_one_follows_it() -> None:
    known = {"leaf": Stored(), "a": Stored()}
    placement = place(["a", "b"], [follows(), follows()], known, CHAT, "leaf")
    assert parents(placement) == {"b": "a"}
    assert placement.leaf == "b"


def test_a_retried_message_is_a_parent_for_the_batch_even_when_deleted() -> None:
    known = {"leaf": Stored(), "a": Stored(deleted_at=GONE)}
    placement = place(["a", "b"], [follows(), under("a")], known, CHAT, "leaf")
    assert parents(placement) == {"b": "a"}


def test_a_deleted_retried_message_is_not_followed() -> None:
    known = {"leaf": Stored(), "a": Stored(deleted_at=GONE)}
    placement = place(["a", "b"], [follows(), follows()], known, CHAT, "leaf")
    assert parents(placement) == {"b": "leaf"}
    assert placement.leaf == "b"


def test_slots_keep_the_order_of_the_batch() -> None:
    known = {"b": Stored()}
    placement = place(["a", "b", "c"], [under(None), follows(), follows()], known, CHAT, None)
    assert [s.id for s in placement.slots] == ["a", "b", "c"]
    assert [s.id for s in placement.new] == ["a", "c"]


# --- counts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    prompt_tokens: int | None
    completion_tokens: int | None


def test_tokens_add_up_and_missing_counts_are_zero() -> None:
    assert token_total([Tokens(3, 4), Tokens(None, 5), Tokens(None, None)]) == 12
    assert token_total([]) == 0
