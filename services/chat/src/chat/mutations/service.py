"""Applying a device's mutation (a `MutationRequested` sync sent on `chat.command.v1`)
exactly once, through the same services the REST API calls, and answering it with a
`MutationResolved` on `chat.mutation.v1` in the same transaction — a consumer batch of
them at once, in one transaction.

Exactly once: the consumer's inbox drops a redelivered event, and `applied_mutations`
(keyed by user, device and mutation number) holds the answer, so the same mutation sent
again under a new event id is answered again and changes nothing. A mutation the REST API
would refuse (400/404/409, a deleted record) is `rejected` with that error; its partial
writes and events are rolled back to a savepoint, and the batch moves on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from chat.accounts.guard import live_users_held, seqs_given_back_on_error
from chat.conversations import service as conversations
from chat.conversations.schemas import ChatCreate, ChatPatch
from chat.feed.repository import Row
from chat.feed.service import record
from chat.folders import service as folders
from chat.folders.schemas import FolderCreate, FolderPatch
from chat.memories import service as memories
from chat.memories.schemas import MemoryCreate, MemoryPatch
from chat.messages import service as messages
from chat.messages.schemas import MessageIn, MessagePatch
from chat.models import AppliedMutation, Conversation, Message
from chat.mutations import domain
from chat.mutations.domain import Refusal, Step
from chat.mutations.repository import MutationRepository
from chat.settings import Settings
from contracts.events.sync import MutationRequested, MutationResolved
from contracts.topics import CHAT_MUTATION
from servicekit.errors import Conflict, ServiceError, ValidationFailed
from servicekit.uow import UnitOfWork


@dataclass(frozen=True)
class Outcome:
    """What became of one mutation: the answer, whether it was one given before, and the
    chat whose cached reads it made stale (None: the user's other data)."""

    user_id: str
    resolved: MutationResolved
    replayed: bool
    chat_id: str | None


Key = tuple[str, str, int]  # (user, device, mid): a mutation's answer is kept under it


@dataclass
class _Known:
    """What the batch knows of the rows it names, so that each mutation's row costs no
    query. All were read at once after the batch's users were locked: no other writer of
    theirs commits before this transaction does (every write takes the user's seq row,
    chat.accounts.guard), so the rows in the session stay current, but for two things.
    An id found absent stays absent until this batch creates it (the session keeps no
    record of a miss: `absent` does). Messages a conversation's delete tombstoned by one
    SQL statement are stale in the session: `fresh` users' messages are read again, as is
    every row in the careful pass (a rolled-back savepoint may leave some stale)."""

    rows: dict[tuple[str, str, str], Row]  # held here: the session keeps rows weakly
    absent: set[tuple[str, str, str]]  # (entity, user, id)
    fresh: set[str]  # users whose messages are read again
    careful: bool

    def needs_read(self, user_id: str, entity: str) -> bool:
        return self.careful or (entity == "message" and user_id in self.fresh)

    def changed(self, user_id: str, m: MutationRequested, step: Step) -> None:
        """The mutation applied: what it made exist, or made stale."""
        self.absent.discard((m.entity, user_id, m.id))
        if m.entity != "conversation":
            return
        if step is Step.DELETE:
            self.fresh.add(user_id)
            # held messages of the user may be stale now: held no longer, as before the batch
            # read them at once (read again, by key or by the services' queries)
            for key in [k for k in self.rows if k[0] == "message" and k[1] == user_id]:
                del self.rows[key]
        initial = (m.data or {}).get("initial_message")
        if isinstance(initial, dict) and isinstance(initial.get("id"), str):
            self.absent.discard(("message", user_id, initial["id"]))


class _Refused(Exception):
    """A mutation of a batch applied without savepoints was refused after it may have
    written: the batch is done again with a savepoint per mutation."""


async def resolve_all(
    uow: UnitOfWork,
    settings: Settings,
    commands: Sequence[tuple[str, MutationRequested]],
    now: datetime,
) -> list[Outcome]:
    """Apply each `(user_id, mutation)` once, in order (or find the answer it had), and
    publish the answers; the caller commits.

    The answers given before are read in one query and the new ones written in one; the
    batch's users are locked and checked for a purge once. The batch runs in one savepoint;
    a refusal (rare) rolls it back and the batch runs again with a savepoint per mutation,
    so the refused one leaves nothing and the others apply: two round trips per mutation
    saved when none is refused. The rows the batch names are read in one query per entity
    (`_Known`)."""
    repo = MutationRepository(uow.session)
    before = await repo.answered_many([(u, m.client_id, m.mid) for u, m in commands])
    given = {key: MutationResolved.model_validate(row.result) for key, row in before.items()}
    checkpoint = uow.outbox.checkpoint()
    async with live_users_held(uow, [user_id for user_id, _ in commands]):
        named = _named(commands, given)
        rows = await repo.rows_many(named)
        absent = named - rows.keys()
        try:
            with seqs_given_back_on_error(uow):
                async with uow.session.begin_nested():
                    known = _Known(dict(rows), set(absent), set(), careful=False)
                    outcomes = await _resolve_each(uow, settings, commands, dict(given), now, known)
        except _Refused:
            uow.outbox.rollback_to(checkpoint)
            known = _Known(dict(rows), set(absent), set(), careful=True)
            outcomes = await _resolve_each(uow, settings, commands, dict(given), now, known)
    await repo.add_all(
        [
            AppliedMutation(
                user_id=o.user_id,
                client_id=o.resolved.client_id,
                mid=o.resolved.mid,
                entity=o.resolved.entity,
                entity_id=o.resolved.id,
                status=o.resolved.status,
                result=o.resolved.model_dump(mode="json"),
                applied_at=now,
            )
            for o in outcomes
            if not o.replayed
        ]
    )
    for o in outcomes:
        uow.outbox.add(CHAT_MUTATION, o.resolved, user_id=o.user_id)
    return outcomes


def _named(
    commands: Sequence[tuple[str, MutationRequested]], given: dict[Key, MutationResolved]
) -> set[tuple[str, str, str]]:
    """(entity, user, id) of every row the batch's new mutations name: their own, and the
    conversation a message put goes into."""
    named: set[tuple[str, str, str]] = set()
    for user_id, m in commands:
        if (user_id, m.client_id, m.mid) in given or m.entity not in domain.CHAT_ENTITIES:
            continue
        named.add((m.entity, user_id, m.id))
        conversation_id = (m.data or {}).get("conversation_id")
        if m.entity == "message" and isinstance(conversation_id, str):
            named.add(("conversation", user_id, conversation_id))
    return named


async def _resolve_each(
    uow: UnitOfWork,
    settings: Settings,
    commands: Sequence[tuple[str, MutationRequested]],
    given: dict[Key, MutationResolved],
    now: datetime,
    known: _Known,
) -> list[Outcome]:
    """The batch's outcomes in order; `given` gains each new answer (a mutation sent twice
    in one batch is answered twice, applied once). `known.careful`: a savepoint per
    mutation."""
    outcomes = []
    for user_id, m in commands:
        key = (user_id, m.client_id, m.mid)
        if key in given:
            outcomes.append(Outcome(user_id, given[key], replayed=True, chat_id=None))
            continue
        answer, chat_id = await _apply(uow, settings, user_id, m, now, known)
        resolved = given[key] = MutationResolved(
            client_id=m.client_id, mid=m.mid, entity=m.entity, id=m.id, **answer
        )
        outcomes.append(Outcome(user_id, resolved, replayed=False, chat_id=chat_id))
    return outcomes


def _rejected(code: str, message: str) -> dict[str, Any]:
    return {"status": "rejected", "error": {"code": code, "message": message}}


def _conflict(entity: str, row: Row) -> dict[str, Any]:
    return {"status": "conflict", "version": row.version, "current": record(entity, row)}


async def _apply(
    uow: UnitOfWork,
    settings: Settings,
    user_id: str,
    m: MutationRequested,
    now: datetime,
    known: _Known,
) -> tuple[dict[str, Any], str | None]:
    """The answer's fields (status, version, current, error) and the chat it changed.
    Not `known.careful`: the change runs without a savepoint, and _Refused stands for a
    refusal (its writes may be half done: the caller rolls back the batch)."""
    if m.entity not in domain.CHAT_ENTITIES:
        refused = domain.step_for(m.entity, m.op, exists=False, deleted=False)
        assert isinstance(refused, Refusal)
        return _rejected(refused.code, refused.message), None
    repo = MutationRepository(uow.session)
    row = None
    if (m.entity, user_id, m.id) not in known.absent:
        fresh = known.needs_read(user_id, m.entity)
        row = await repo.row(user_id, m.entity, m.id, fresh=fresh)
    step = domain.step_for(
        m.entity,
        m.op,
        exists=row is not None,
        deleted=row is not None and row.deleted_at is not None,
    )
    chat_id = _chat_of(m, row)
    if isinstance(step, Refusal):
        return _rejected(step.code, step.message), chat_id
    if step is Step.ALREADY_DELETED:
        assert row is not None
        return {"status": "applied", "version": row.version}, chat_id
    if step is Step.SAME_MESSAGE:
        assert isinstance(row, Message)
        return _same_message(settings, row, m), chat_id
    if step is Step.UPDATE and isinstance(row, Message):
        fields = m.fields if m.op == "patch" else m.data
        if domain.content_moved(fields or {}, m.base_version, row.version):
            return _conflict(m.entity, row), chat_id
    known_new = (m.entity, user_id, m.id) in known.absent
    target = Target(uow, settings, user_id, m, step, row, now, known_new)
    version: int | None = None
    try:
        if known.careful:
            version = await _in_savepoint(uow, lambda: _CHANGES[m.entity](target))
        else:
            try:
                version = await _CHANGES[m.entity](target)
            except ServiceError as exc:
                raise _Refused from exc
    except Conflict as exc:
        current = await repo.row(user_id, m.entity, m.id, fresh=True)
        if isinstance(current, Message) and "current_version" in exc.details:
            return _conflict(m.entity, current), chat_id  # the text moved while we looked
        return _rejected(exc.code, exc.message), chat_id
    except ServiceError as exc:
        return _rejected(exc.code, exc.message), chat_id
    known.changed(user_id, m, step)
    if version is not None:
        return {"status": "applied", "version": version}, chat_id
    # a delete: the row the service changed, held in `known.rows`: no SQL
    after = await repo.row(user_id, m.entity, m.id, fresh=known.careful)
    assert after is not None
    return {"status": "applied", "version": after.version}, _chat_of(m, after)


async def _in_savepoint(uow: UnitOfWork, change: Callable[[], Awaitable[int | None]]) -> int | None:
    """Run `change` so that a refusal leaves nothing behind: its writes in a savepoint,
    its events forgotten with it. The batch's other mutations and answers are untouched."""
    checkpoint = uow.outbox.checkpoint()
    try:
        with seqs_given_back_on_error(uow):
            async with uow.session.begin_nested():
                return await change()
    except ServiceError:
        uow.outbox.rollback_to(checkpoint)
        raise


def _chat_of(m: MutationRequested, row: Row | None) -> str | None:
    if isinstance(row, Conversation):
        return row.id
    if isinstance(row, Message):
        return row.conversation_id
    if m.entity == "conversation":
        return m.id
    if m.entity == "message" and m.data is not None:
        conversation_id = m.data.get("conversation_id")
        return conversation_id if isinstance(conversation_id, str) else None
    return None


def _same_message(settings: Settings, row: Message, m: MutationRequested) -> dict[str, Any]:
    """A put of a stored message: a retried create when the text is the same (applied,
    nothing changes), else a conflict; a message's text changes by patch, on a version."""
    try:
        incoming = _parsed(MessageIn, {**domain.without_key(m.data, "conversation_id"), "id": m.id})
    except ServiceError as exc:
        return _rejected(exc.code, exc.message)
    if domain.same_content(row.content, row.parts, incoming.content, incoming.parts):
        return {"status": "applied", "version": row.version}
    return _conflict(m.entity, row)


def _parsed(model: type[BaseModel], data: dict[str, Any]) -> Any:
    """The mutation's data read as the REST API reads the same body (400 otherwise)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise ValidationFailed(f"{where}: {first['msg']}", {"field": where}) from None


def _record_id(m: MutationRequested) -> dict[str, Any]:
    """A put's data with the mutation's id (a different id in the data is refused)."""
    data = dict(m.data or {})
    if data.setdefault("id", m.id) != m.id:
        raise ValidationFailed("data.id differs from the mutation's id", {"field": "id"})
    return data


def _merge(m: MutationRequested, *creation_only: str) -> dict[str, Any]:
    """The fields a patch (or a put of a live row, merged like one) changes."""
    if m.op == "patch":
        return dict(m.fields or {})
    return domain.without_key(_record_id(m), "id", *creation_only)


@dataclass(frozen=True)
class Target:
    """One mutation on its way into a sub-domain's service."""

    uow: UnitOfWork
    settings: Settings
    user_id: str
    m: MutationRequested
    step: Step
    row: Row | None  # as it was before (None: the user never had the id)
    now: datetime
    known_new: bool = False  # row None read in this batch (not looked up again)


async def _conversation(t: Target) -> int | None:
    uow, settings, user_id, m, now = t.uow, t.settings, t.user_id, t.m, t.now
    if t.step is Step.DELETE:
        await conversations.delete(uow, user_id, m.id, now)
        return None
    if t.step is Step.CREATE:
        data = _record_id(m)
        archived = data.pop("is_archived", None)  # not a REST create's field: set after
        body = _parsed(ChatCreate, data)
        created, _ = await conversations.create(
            uow, settings, user_id, body, now, stamp=m.stamp, known_new=t.known_new
        )
        if archived is None:
            return created.chat.version
        patch = _parsed(ChatPatch, {"is_archived": archived})
        chat = await conversations.update(uow, settings, user_id, m.id, patch, now, stamp=m.stamp)
        return chat.version
    patch = _parsed(ChatPatch, _merge(m, "initial_message"))
    chat = await conversations.update(uow, settings, user_id, m.id, patch, now, stamp=m.stamp)
    return chat.version


async def _message(t: Target) -> int | None:
    uow, settings, user_id, m, now = t.uow, t.settings, t.user_id, t.m, t.now
    if t.step is Step.CREATE:
        data = _record_id(m)
        conversation_id = data.pop("conversation_id", None)
        if not isinstance(conversation_id, str):
            raise ValidationFailed(
                "a message put names its conversation_id", {"field": "conversation_id"}
            )
        incoming = [_parsed(MessageIn, data)]
        stored = await messages.store(uow, settings, user_id, conversation_id, incoming, now)
        return stored.messages[0].version
    if t.row is None:
        raise messages.message_not_found(m.id)
    assert isinstance(t.row, Message)
    if t.step is Step.DELETE:
        await messages.delete(uow, user_id, t.row.conversation_id, m.id, now)
        return None
    fields = domain.without_key(m.fields, "conversation_id", "base_version")
    if domain.touches_content(fields) and m.base_version is not None:
        fields["base_version"] = m.base_version  # checked again under the row's lock
    patch = _parsed(MessagePatch, fields)
    edited = await messages.edit(uow, settings, user_id, t.row.conversation_id, m.id, patch, now)
    return edited.version


async def _folder(t: Target) -> int | None:
    uow, user_id, m, now = t.uow, t.user_id, t.m, t.now
    if t.step is Step.DELETE:
        if t.row is None:
            raise folders.folder_not_found(m.id)
        await folders.delete(uow, user_id, m.id, now)
        return None
    if t.step is Step.CREATE:
        body = _parsed(FolderCreate, _record_id(m))
        created = await folders.create(
            uow, user_id, body, now, stamp=m.stamp, known_new=t.known_new
        )
        return created[0].version
    patch = _parsed(FolderPatch, _merge(m))
    return (await folders.update(uow, user_id, m.id, patch, now, stamp=m.stamp)).version


async def _memory(t: Target) -> int | None:
    uow, settings, user_id, m, now = t.uow, t.settings, t.user_id, t.m, t.now
    if t.step is Step.DELETE:
        await memories.delete(uow, user_id, m.id, now)
        return None
    if t.step is Step.CREATE:
        body = _parsed(MemoryCreate, _record_id(m))
        made = await memories.create(
            uow, settings, user_id, body, now, stamp=m.stamp, known_new=t.known_new
        )
        return made[0].version
    patch = _parsed(MemoryPatch, _merge(m))
    return (await memories.update(uow, settings, user_id, m.id, patch, now, stamp=m.stamp)).version


# the version after, as the service answered it (None: a delete, read from the row)
Change = Callable[[Target], Awaitable[int | None]]


_CHANGES: dict[str, Change] = {
    "conversation": _conversation,
    "message": _message,
    "folder": _folder,
    "memory": _memory,
}
