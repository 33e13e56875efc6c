"""Push's use cases: take a client's mutations in mid order exactly once, apply documents in
this transaction, send the others to their owners as commands (outbox), and wait a while for
the owners' answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from contracts.events.sync import MutationRequested
from contracts.topics import AUTH_COMMAND, CHAT_COMMAND
from servicekit.errors import ServiceError, ValidationFailed
from servicekit.uow import UnitOfWork
from sync.clients.repository import ClientRepository
from sync.documents import service as documents
from sync.metrics import MUTATIONS_RECEIVED, count_outcome
from sync.mutations import domain
from sync.mutations.repository import MutationRepository
from sync.mutations.schemas import MutationIn, PushIn
from sync.settings import Settings
from sync.signals import UserSignals

COMMANDS = {"chat": CHAT_COMMAND, "auth": AUTH_COMMAND}


class MutationGap(ServiceError):
    status_code, code = 409, "MUTATION_GAP"


@dataclass
class Pushed:
    """A push's answer so far: a result per mutation (by mid, in order) and the mids still
    waiting for their owner."""

    results: dict[int, dict[str, Any]]
    last_mid: int
    pending: list[int] = field(default_factory=list)
    documents_changed: bool = False


def _consecutive(mutations: list[MutationIn]) -> None:
    first = mutations[0].mid
    for n, mutation in enumerate(mutations):
        if mutation.mid != first + n:
            raise ValidationFailed(
                "mids must be consecutive and in order within a push",
                {"field": f"mutations.{n}.mid", "expected_mid": first + n},
            )


def _entity_label(raw: dict[str, Any]) -> str:
    """The mutation's entity as metrics and the log name it ("unknown" if not one)."""
    entity = raw.get("entity")
    return entity if isinstance(entity, str) and entity in domain.OWNERS else "unknown"


def _write_of(checked: domain.Checked) -> documents.DocumentWrite:
    return documents.DocumentWrite(
        collection=checked.collection or "",
        id=checked.id,
        op=checked.op,
        data=checked.data,
        fields=checked.fields,
        base_version=checked.base_version,
        stamp=checked.stamp,
    )


class MutationLog:
    """The exactly-once bookkeeping of device mutations; the entrypoint owns each unit of
    work."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.clock = clock
        self.resend_after = timedelta(seconds=settings.mutation_resend_after_seconds)

    async def push(self, uow: UnitOfWork, user_id: str, body: PushIn) -> Pushed:
        """Record and apply (or send on) the client's new mutations; replayed mids answer
        their recorded result. MutationGap when the first new mid skips some."""
        if len(body.mutations) > self.settings.max_mutations:
            raise ValidationFailed(
                f"at most {self.settings.max_mutations} mutations per push",
                {"field": "mutations", "max_mutations": self.settings.max_mutations},
            )
        clients = ClientRepository(uow.session)
        last_mid = await clients.touch(user_id, body.client_id)
        if not body.mutations:
            return Pushed({}, last_mid)
        _consecutive(body.mutations)
        if body.mutations[0].mid > last_mid + 1:
            raise MutationGap(
                f"mutation {last_mid + 1} of this client is missing: push from it",
                {"expected_mid": last_mid + 1, "last_mid": last_mid},
            )
        log = MutationRepository(uow.session)
        pushed = Pushed({}, last_mid)
        replayed = [m for m in body.mutations if m.mid <= last_mid]
        stored = await log.get_many(user_id, body.client_id, [m.mid for m in replayed])
        for m in replayed:
            row = stored.get(m.mid)
            if row is None:  # below last_mid but not in the log: cannot happen, say so
                pushed.results[m.mid] = domain.result_of(
                    m.mid,
                    domain.REJECTED,
                    {"error": {"code": "UNKNOWN_MUTATION", "message": "not in the log"}},
                    replayed=True,
                )
                continue
            pushed.results[m.mid] = domain.result_of(m.mid, row.status, row.result, replayed=True)
            if row.status == domain.PENDING:
                pushed.pending.append(m.mid)
            count_outcome(row.entity, "duplicate")
        fresh = [m for m in body.mutations if m.mid > last_mid]
        if fresh:
            await self._take(uow, user_id, body.client_id, fresh, pushed)
            await clients.set_last_mid(user_id, body.client_id, fresh[-1].mid)
            pushed.last_mid = fresh[-1].mid
        return pushed

    async def _take(
        self, uow: UnitOfWork, user_id: str, client_id: str, fresh: list[MutationIn], pushed: Pushed
    ) -> None:
        now = self.clock()
        now_ms = int(now.timestamp() * 1000)
        skew_ms = int(self.settings.max_clock_skew_seconds * 1000)
        raws = [m.raw() for m in fresh]
        checked: list[domain.Checked | domain.Rejected] = []
        for raw in raws:
            MUTATIONS_RECEIVED.labels(_entity_label(raw)).inc()
            try:
                checked.append(domain.check(raw, client_id, now_ms, skew_ms))
            except domain.Rejected as rejected:
                checked.append(rejected)
        # the documents all at once (sync applies them here, in mid order): a push's
        # hundreds of mutations cost a few statements, not a few each
        writes = [
            _write_of(c) for c in checked if isinstance(c, domain.Checked) and c.owner == "sync"
        ]
        applied = iter(
            await documents.apply_all(
                uow, user_id, writes, max_bytes=self.settings.document_max_bytes, now=now
            )
        )
        rows: list[dict[str, Any]] = []
        for raw, check in zip(raws, checked, strict=True):
            command: MutationRequested | None = None
            if isinstance(check, domain.Rejected):
                status, result = domain.REJECTED, {"error": check.error()}
                outcome = "rejected"
            elif check.owner == "sync":
                done, result = next(applied)
                status = done.status
                pushed.documents_changed |= done.new_version
                outcome = "merged" if done.merged else done.status
            else:
                command = self._command(uow, user_id, client_id, check)
                status, result, outcome = domain.PENDING, {}, ""
            entity_label = _entity_label(raw)
            if outcome:
                count_outcome(entity_label, outcome)
            result = {k: v for k, v in result.items() if v is not None}
            mid = raw["mid"]
            rows.append(
                {
                    "user_id": user_id,
                    "client_id": client_id,
                    "mid": mid,
                    "entity": entity_label,
                    "op": str(raw.get("op"))[:16],
                    "entity_id": str(raw.get("id"))[:128],
                    "status": status,
                    "result": result,
                    # a final result is answered by this push; a replay repeats it
                    "delivered": status != domain.PENDING,
                    "resolved_at": None if status == domain.PENDING else now,
                    # kept until the owner answers: the resend sweep may need to send it again
                    "command": None if command is None else command.model_dump(mode="json"),
                    "resend_at": None if command is None else now + self.resend_after,
                }
            )
            pushed.results[mid] = domain.result_of(mid, status, result)
            if status == domain.PENDING:
                pushed.pending.append(mid)
        await MutationRepository(uow.session).add_all(rows)

    def _command(
        self, uow: UnitOfWork, user_id: str, client_id: str, m: domain.Checked
    ) -> MutationRequested:
        command = MutationRequested(
            client_id=client_id,
            mid=m.mid,
            entity=m.entity,
            op=m.op,
            id=m.id,
            base_version=m.base_version,
            data=m.data,
            fields=m.fields,
            hlc=m.hlc,
            stamp=m.stamp,
        )
        uow.outbox.add(COMMANDS[m.owner], command, user_id=user_id)
        return command

    async def wait_for_owners(
        self,
        uow_factory: Callable[[], UnitOfWork],
        signals: UserSignals,
        user_id: str,
        client_id: str,
        pushed: Pushed,
        wait: float,
    ) -> None:
        """Wait up to `wait` seconds for the owners' answers to the pending mutations; what
        arrives in time replaces `pending` in `pushed.results` (and counts as delivered)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        async with signals.listen(user_id) as changed:
            while pushed.pending:
                # cleared before the look: a signal that comes during it is not lost
                changed.clear()
                async with uow_factory() as uow:
                    done = await MutationRepository(uow.session).deliver_finished(
                        user_id, client_id, pushed.pending
                    )
                    if done:
                        await uow.commit()
                for mid, (status, result) in done.items():
                    was = pushed.results[mid]
                    pushed.results[mid] = domain.result_of(
                        mid, status, result, replayed=bool(was.get("replayed"))
                    )
                pushed.pending = [mid for mid in pushed.pending if mid not in done]
                remaining = deadline - loop.time()
                if not pushed.pending or remaining <= 0:
                    return
                # on a timeout: one last look, then answer with what came
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
