"""The resend sweep: a command whose owner has not answered is sent again through the outbox.

The embedded broker keeps its messages in memory, and any broker can lose a message its
producer thought sent: without this a mutation whose command or answer was lost stays
`pending` for ever. Owners keep each answer by (user, client, mid) and answer a repeated
command with it, so a command sent twice is applied once. The delay doubles after each
send; after the last one the mutation is rejected `OWNER_UNAVAILABLE` (the device drops it
and its next pull brings the server's truth, whatever the owner did)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from contracts.events.sync import MutationRequested
from servicekit.uow import UnitOfWork
from sync.metrics import MUTATION_RESENDS, count_outcome
from sync.models import Mutation
from sync.mutations import domain
from sync.mutations.repository import MutationRepository
from sync.mutations.service import COMMANDS
from sync.settings import Settings

log = structlog.get_logger(__name__)
BATCH = 500
GAVE_UP = {
    "code": "OWNER_UNAVAILABLE",
    "message": "the owner of this record never answered: pull to see the server's record",
}


class CommandResender:
    def __init__(
        self,
        settings: Settings,
        uow_factory: Callable[[], UnitOfWork],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.uow_factory = uow_factory
        self.clock = clock

    def delay(self, resends: int) -> timedelta:
        """How long after its `resends`-th send again a command is sent once more."""
        first = self.settings.mutation_resend_after_seconds
        most = self.settings.mutation_resend_max_delay_seconds
        return timedelta(seconds=min(most, first * 2.0 ** min(resends, 40)))

    async def sweep(self) -> int:
        """One pass: how many commands were sent again (or given up on)."""
        done = 0
        while True:
            now = self.clock()
            async with self.uow_factory() as uow:
                due = await MutationRepository(uow.session).due_for_resend(now, BATCH)
                for row in due:
                    self._resend_or_give_up(uow, row, now)
                await uow.commit()
            done += len(due)
            if len(due) < BATCH:
                return done

    def _resend_or_give_up(self, uow: UnitOfWork, row: Mutation, now: datetime) -> None:
        owner = domain.OWNERS.get(row.entity)
        if row.command is None or owner not in COMMANDS:  # nothing to send: not expected
            row.resend_at = None
            return
        if row.resends >= self.settings.mutation_resend_max_attempts:
            row.status, row.result = domain.REJECTED, {"error": GAVE_UP}
            row.resolved_at, row.command, row.resend_at = now, None, None
            count_outcome(row.entity, "rejected")
            log.warning(
                "mutation given up: its owner never answered",
                user_id=row.user_id,
                client_id=row.client_id,
                mid=row.mid,
                entity=row.entity,
                resends=row.resends,
            )
            return
        command = MutationRequested.model_validate(row.command)
        uow.outbox.add(COMMANDS[owner], command, user_id=row.user_id)
        row.resends += 1
        row.resend_at = now + self.delay(row.resends)
        MUTATION_RESENDS.labels(row.entity).inc()

    async def run(self) -> None:
        # a pass every half of the first delay: a lost command waits at most 1.5 times it
        pause = self.settings.mutation_resend_after_seconds / 2
        while True:
            try:
                sent = await self.sweep()
                if sent:
                    log.info("unanswered commands sent again", count=sent)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("command resend sweep failed")
            await asyncio.sleep(pause)
