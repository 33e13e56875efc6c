"""The message-tree rules with no I/O: which ids a stored batch gets, where each of its
messages hangs (a parent given, a new root, or the tip of the branch being followed), which
ids are retries of messages stored before, and where the conversation's leaf ends up."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from chat.domain import new_id
from servicekit.errors import Conflict, PayloadTooLarge, ValidationFailed


class Incoming(Protocol):
    """What the rules read of a message a client stores (`MessageIn`)."""

    @property
    def parent_id(self) -> str | None: ...
    @property
    def follows_branch(self) -> bool: ...


class Stored(Protocol):
    """What the rules read of a message stored before (`Message`)."""

    @property
    def conversation_id(self) -> str: ...
    @property
    def deleted_at(self) -> datetime | None: ...


class Counted(Protocol):
    @property
    def prompt_tokens(self) -> int | None: ...
    @property
    def completion_tokens(self) -> int | None: ...


S = TypeVar("S", bound=Stored)


@dataclass(frozen=True)
class Slot(Generic[S]):
    """One message of the batch, in its order: a new one under `parent_id`, or the message
    stored before under the same id (`existing`), which stays as it was."""

    id: str
    parent_id: str | None = None
    existing: S | None = None


@dataclass(frozen=True)
class Placement(Generic[S]):
    slots: list[Slot[S]]
    leaf: str | None  # the conversation's current leaf afterwards

    @property
    def new(self) -> list[Slot[S]]:
        return [s for s in self.slots if s.existing is None]


def check_batch_size(count: int, max_messages: int) -> None:
    if count > max_messages:
        raise PayloadTooLarge(
            f"at most {max_messages} messages per request",
            {"max_messages": max_messages, "received": count},
        )


def assign_ids(given: Sequence[str | None], make_id: Callable[[], str] = new_id) -> list[str]:
    """The client's ids, a new one where none was given; an id twice in one request is
    refused (which of the two would win is anyone's guess)."""
    ids = [i or make_id() for i in given]
    if len(set(ids)) != len(ids):
        raise ValidationFailed(
            "two messages of the request have the same id",
            {"ids": sorted({i for i in ids if ids.count(i) > 1})},
        )
    return ids


def ids_to_load(ids: Sequence[str], incoming: Sequence[Incoming], leaf: str | None) -> list[str]:
    """Every stored message the rules may read: the batch's own ids (retries), the parents
    it names, and the current leaf (where messages without a parent go)."""
    parents = [m.parent_id for m in incoming if m.parent_id]
    return [*ids, *parents, *([leaf] if leaf is not None else [])]


def refuse_foreign(ids: Sequence[str], known: Mapping[str, Stored], conversation_id: str) -> None:
    """A client id the user already used in another chat is a Conflict: ids are the user's,
    not the chat's."""
    elsewhere = [i for i in ids if i in known and known[i].conversation_id != conversation_id]
    if elsewhere:
        raise Conflict("these message ids belong to another chat", {"ids": elsewhere})


def count_new(ids: Iterable[str], known: Mapping[str, Stored]) -> int:
    return sum(1 for i in ids if i not in known)


def place(
    ids: Sequence[str],
    incoming: Sequence[Incoming],
    known: Mapping[str, S],
    conversation_id: str,
    leaf: str | None,
) -> Placement[S]:
    """Hang the batch on the tree, in order. A message that follows the branch goes under
    the tip: the current leaf, then each message of the batch in turn (a live retried one
    too); `parent_id: null` starts a new root. A parent must be earlier in the batch or a
    live message of this chat. The leaf moves to the tip only when something is new."""
    slots: list[Slot[S]] = []
    in_batch: set[str] = set()
    tip = leaf
    for message_id, m in zip(ids, incoming, strict=True):
        existing = known.get(message_id)
        if existing is not None:
            slots.append(Slot(message_id, existing=existing))
            if existing.deleted_at is None:
                tip = message_id
        else:
            parent = tip if m.follows_branch else m.parent_id
            if parent is not None and parent not in in_batch:
                check_parent(message_id, parent, known.get(parent), conversation_id)
            slots.append(Slot(message_id, parent_id=parent))
            tip = message_id
        in_batch.add(message_id)
    anything_new = any(s.existing is None for s in slots)
    return Placement(slots, tip if anything_new else leaf)


def check_parent(message_id: str, parent: str, found: Stored | None, conversation_id: str) -> None:
    """A parent outside the batch must be a live message of this chat."""
    if found is None or found.conversation_id != conversation_id or found.deleted_at is not None:
        raise ValidationFailed(
            "parent_id is not a message of this chat", {"id": message_id, "parent_id": parent}
        )


def token_total(messages: Iterable[Counted]) -> int:
    return sum((m.prompt_tokens or 0) + (m.completion_tokens or 0) for m in messages)
