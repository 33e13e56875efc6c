"""The unit of work: one transaction, rolled back unless the entrypoint commits it.

async with uow_factory() as uow:
    ...                           # repositories use uow.session and only flush
    uow.outbox.add(topic, payload, user_id=...)
    uow.after_commit(start_work)  # e.g. a task that reads what this transaction wrote
    await uow.commit()            # data and events become visible together, then
                                  # the after-commit callbacks run
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit.outbox import Outbox

AfterCommit = Callable[[], Awaitable[None]]


class EventsWouldBeLost(RuntimeError):
    """The session was committed around the unit of work while events were pending."""


class UnitOfWork:
    """A session, its outbox, and the rule that nothing is kept unless committed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], producer: str) -> None:
        self._sessions = sessions
        self._producer = producer
        self._committed = False
        self._after_commit: list[AfterCommit] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.outbox = Outbox(self.session, self._producer)
        self._committed = False
        self._after_commit = []
        event.listen(self.session.sync_session, "before_commit", self._refuse_pending_events)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                self._after_commit.clear()  # rolled back: what was to follow never happens
                await self.session.rollback()
        finally:
            await self.session.close()

    def after_commit(self, callback: AfterCommit) -> None:
        """Run `callback` once this unit of work has committed, never after a rollback: for
        work that must only follow durable data (starting a task that reads it, telling
        clients about it). The caller that owns the transaction still decides to commit."""
        self._after_commit.append(callback)

    async def commit(self) -> None:
        """Write the pending events, then make the data and its events durable together;
        then run the after-commit callbacks in order. Each one runs even if an earlier one
        failed; the first failure is raised afterwards (the data stays committed)."""
        await self.outbox.flush()
        await self.session.commit()
        self._committed = True
        callbacks, self._after_commit = self._after_commit, []
        failure: Exception | None = None
        for callback in callbacks:
            try:
                await callback()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _refuse_pending_events(self, session: Any) -> None:
        # releasing a savepoint commits nothing: its events are written at the real commit
        if self.outbox.pending and not session.in_nested_transaction():
            raise EventsWouldBeLost(
                f"{self.outbox.pending} outbox events are pending: commit with uow.commit()"
            )


def uow_factory(
    sessions: async_sessionmaker[AsyncSession], producer: str
) -> Callable[[], UnitOfWork]:
    """A factory the composition root injects: one fresh UnitOfWork per use."""
    return lambda: UnitOfWork(sessions, producer)
