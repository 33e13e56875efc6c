"""The unit of work: one transaction, rolled back unless the entrypoint commits it.

    async with uow_factory() as uow:
        ...                           # repositories use uow.session and only flush
        uow.outbox.add(topic, payload, user_id=...)
        await uow.commit()            # data and events become visible together
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit.outbox import Outbox


class EventsWouldBeLost(RuntimeError):
    """The session was committed around the unit of work while events were pending."""


class UnitOfWork:
    """A session, its outbox, and the rule that nothing is kept unless committed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], producer: str) -> None:
        self._sessions = sessions
        self._producer = producer
        self._committed = False

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.outbox = Outbox(self.session, self._producer)
        self._committed = False
        event.listen(self.session.sync_session, "before_commit", self._refuse_pending_events)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if not self._committed:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        """Write the pending events, then make the data and its events durable together."""
        await self.outbox.flush()
        await self.session.commit()
        self._committed = True

    def _refuse_pending_events(self, _: Any) -> None:
        if self.outbox.pending:
            raise EventsWouldBeLost(
                f"{self.outbox.pending} outbox events are pending: commit with uow.commit()")


def uow_factory(sessions: async_sessionmaker[AsyncSession], producer: str
                ) -> Callable[[], UnitOfWork]:
    """A factory the composition root injects: one fresh UnitOfWork per use."""
    return lambda: UnitOfWork(sessions, producer)
