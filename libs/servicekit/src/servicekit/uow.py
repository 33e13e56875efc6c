"""The unit of work: one transaction, rolled back unless the entrypoint commits it.

    async with uow_factory() as uow:
        ...                           # repositories use uow.session and only flush
        await uow.outbox.add(topic, payload, user_id=...)
        await uow.commit()            # data and events become visible together
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from servicekit.outbox import Outbox


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
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if not self._committed:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def commit(self) -> None:
        """Make the data and its events durable, together."""
        await self.session.commit()
        self._committed = True


def uow_factory(sessions: async_sessionmaker[AsyncSession], producer: str
                ) -> Callable[[], UnitOfWork]:
    """A factory the composition root injects: one fresh UnitOfWork per use."""
    return lambda: UnitOfWork(sessions, producer)
