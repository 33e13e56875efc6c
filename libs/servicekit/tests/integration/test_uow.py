"""The unit of work's after-commit callbacks, over the real database: they run once the
data is durable (another connection sees it), and never after a rollback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import column, delete, table, text

from contracts.events.auth import UserRegistered
from parley.testing import unique_name
from servicekit.db import create_sessionmaker
from servicekit.uow import EventsWouldBeLost, ReadOnly, UnitOfWork

from .conftest import Service

pytestmark = pytest.mark.integration


async def events_of(service: Service, user_id: str) -> int:
    """Outbox rows of `user_id`, read on a connection of its own (committed data only)."""
    async with service.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM outbox WHERE key = :u"), {"u": user_id}
                )
            ).scalar_one()
        )


def add_event(uow: UnitOfWork, service: Service, user_id: str) -> None:
    uow.outbox.add(
        service.topic,
        UserRegistered(email=f"{user_id}@example.com", created_at=datetime.now(UTC)),
        user_id=user_id,
    )


async def test_callbacks_run_after_the_commit_and_see_its_data(service: Service) -> None:
    user = unique_name("u")
    seen: list[int] = []

    async def look() -> None:
        seen.append(await events_of(service, user))

    async with service.uow() as uow:
        add_event(uow, service, user)
        uow.after_commit(look)
        uow.after_commit(look)
        assert seen == []  # registering runs nothing
        await uow.commit()
        assert seen == [1, 1]  # both ran, in order, once the row was visible to others


async def test_no_callback_runs_when_the_work_is_rolled_back(service: Service) -> None:
    user = unique_name("u")
    ran: list[str] = []

    async def note() -> None:
        ran.append("ran")

    async with service.uow() as uow:  # left without commit: rolled back
        add_event(uow, service, user)
        uow.after_commit(note)

    async def fail_inside() -> None:
        async with service.uow() as uow:
            uow.after_commit(note)
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await fail_inside()
    assert ran == []
    assert await events_of(service, user) == 0

    async with service.uow() as uow:  # the same kind of unit, reused: starts with none
        await uow.commit()
    assert ran == []


async def test_a_failing_callback_leaves_the_data_committed_and_the_others_run(
    service: Service,
) -> None:
    user = unique_name("u")
    ran: list[str] = []

    async def fail() -> None:
        raise RuntimeError("the cache is down")

    async def note() -> None:
        ran.append("second")

    async def commit_with_both() -> None:
        async with service.uow() as uow:
            add_event(uow, service, user)
            uow.after_commit(fail)
            uow.after_commit(note)
            await uow.commit()

    with pytest.raises(RuntimeError, match="the cache is down"):
        await commit_with_both()
    assert ran == ["second"]
    assert await events_of(service, user) == 1


async def test_savepoints_keep_their_events_till_the_commit_or_forget_them_on_rollback(
    service: Service,
) -> None:
    kept, dropped = unique_name("kept"), unique_name("dropped")
    async with service.uow() as uow:
        async with uow.session.begin_nested():  # released: its event waits for the commit
            add_event(uow, service, kept)
        checkpoint = uow.outbox.checkpoint()
        savepoint = await uow.session.begin_nested()
        add_event(uow, service, dropped)
        await savepoint.rollback()  # refused: its writes go, and its events with them
        uow.outbox.rollback_to(checkpoint)
        assert await events_of(service, kept) == 0  # nothing written before the commit
        await uow.commit()
    assert (await events_of(service, kept), await events_of(service, dropped)) == (1, 0)


async def test_committing_the_session_around_pending_events_is_refused(service: Service) -> None:
    user = unique_name("u")
    async with service.uow() as uow:
        add_event(uow, service, user)
        with pytest.raises(EventsWouldBeLost):
            await uow.session.commit()
    assert await events_of(service, user) == 0


def reader_of(service: Service) -> UnitOfWork:
    readers = create_sessionmaker(service.engine.execution_options(isolation_level="AUTOCOMMIT"))
    return UnitOfWork(readers, "auth", read_only=True)


async def test_a_reader_sends_no_transaction_and_each_statement_sees_its_own_moment(
    service: Service,
) -> None:
    """now() is the transaction's start: the same twice in a unit of work, not in a reader
    (no BEGIN was sent: each statement is its own transaction)."""
    query = text("SELECT now(), pg_sleep(0.01)")
    async with service.uow() as uow:
        first, second = [(await uow.session.execute(query)).one()[0] for _ in range(2)]
        assert first == second
    async with reader_of(service) as reader:
        first, second = [(await reader.session.execute(query)).one()[0] for _ in range(2)]
        assert first < second
    async with service.uow() as uow:  # the pooled connection went back transactional
        first, second = [(await uow.session.execute(query)).one()[0] for _ in range(2)]
        assert first == second


async def test_a_reader_refuses_every_write_before_it_is_sent(service: Service) -> None:
    user = unique_name("u")
    outbox = table("outbox", column("key"))
    async with reader_of(service) as reader:
        with pytest.raises(ReadOnly):
            await reader.session.execute(delete(outbox).where(outbox.c.key == user))
        add_event(reader, service, user)
        with pytest.raises(ReadOnly):
            await reader.commit()
    assert await events_of(service, user) == 0
