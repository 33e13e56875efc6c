"""The unit of work: one transaction, rolled back unless the entrypoint commits it.

async with uow_factory() as uow:
    ...                           # repositories use uow.session and only flush
    uow.outbox.add(topic, payload, user_id=...)
    uow.after_commit(start_work)  # e.g. a task that reads what this transaction wrote
    await uow.commit()            # data and events become visible together, then
                                  # the after-commit callbacks run

A read-only one (`read_only=True`, on sessions whose connections autocommit: the runtime's
`reader()`) sends no BEGIN and no ROLLBACK, two of the three round trips of a one-query
read; each statement then sees its own snapshot, so it serves reads that need none
(a page, a record, a list). Writing through it (a flush, an ORM insert, update or delete;
a commit) raises `ReadOnly` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session

from servicekit.outbox import Outbox

AfterCommit = Callable[[], Awaitable[None]]


class EventsWouldBeLost(RuntimeError):
    """The session was committed around the unit of work while events were pending."""


class ReadOnly(RuntimeError):
    """A read-only unit of work was asked to write (a bug of the caller, not the client's)."""


class UnitOfWork:
    """A session, its outbox, and the rule that nothing is kept unless committed."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], producer: str, *, read_only: bool = False
    ) -> None:
        self._sessions = sessions
        self._producer = producer
        self.read_only = read_only
        self._committed = False
        self._after_commit: list[AfterCommit] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.outbox = Outbox(self.session, self._producer)
        self._committed = False
        self._after_commit = []
        self.session.info[_UOW] = self  # for the rules below, listened for once per process
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
        if self.read_only:
            raise ReadOnly("a read-only unit of work has nothing to commit")
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


# The unit of work's rules, on every session of the process that belongs to one (listening
# on each session instead cost ~8 % of a one-query request's CPU: SQLAlchemy's listener
# registry is built per target).
_UOW = "servicekit.uow"


def _unit_of(session: Session) -> UnitOfWork | None:
    uow = session.info.get(_UOW)
    return uow if isinstance(uow, UnitOfWork) else None


@event.listens_for(Session, "before_commit")
def _refuse_pending_events(session: Session) -> None:
    uow = _unit_of(session)
    # releasing a savepoint commits nothing: its events are written at the real commit
    if uow is not None and uow.outbox.pending and not session.in_nested_transaction():
        raise EventsWouldBeLost(
            f"{uow.outbox.pending} outbox events are pending: commit with uow.commit()"
        )


# a read-only unit of work's statements autocommit: a write would be kept at once
@event.listens_for(Session, "before_flush")
def _refuse_flush(session: Session, *_: Any) -> None:
    uow = _unit_of(session)
    if uow is not None and uow.read_only and (session.new or session.dirty or session.deleted):
        raise ReadOnly("a read-only unit of work cannot write (its statements autocommit)")


@event.listens_for(Session, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    uow = _unit_of(state.session)
    if (
        uow is not None
        and uow.read_only
        and (state.is_insert or state.is_update or state.is_delete)
    ):
        raise ReadOnly("a read-only unit of work cannot write (its statements autocommit)")


def uow_factory(
    sessions: async_sessionmaker[AsyncSession], producer: str
) -> Callable[[], UnitOfWork]:
    """A factory the composition root injects: one fresh UnitOfWork per use."""
    return lambda: UnitOfWork(sessions, producer)
