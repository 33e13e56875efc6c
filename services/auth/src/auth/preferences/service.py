"""Preference use cases; the entrypoint commits. One way to write them: the REST API and
device mutations (auth.mutations) both go through `write`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from auth.models import Preferences
from auth.preferences import domain
from auth.preferences.domain import PreferenceValues
from auth.preferences.repository import PreferencesRepository
from auth.preferences.schemas import PreferencesOut, VersionsOut
from contracts.events.auth import PreferencesUpdated
from contracts.feed import FeedLines, change_line
from contracts.topics import AUTH_PREFERENCES
from servicekit.errors import PayloadTooLarge
from servicekit.outbox import next_seq
from servicekit.uow import UnitOfWork

ENTITY = "preferences"


def view(row: Preferences | None) -> PreferencesOut:
    if row is None:
        return PreferencesOut(
            preferences=PreferenceValues(),
            versions=dict.fromkeys(domain.FIELDS, 0),
            updated_at=None,
        )
    return PreferencesOut(
        preferences=PreferenceValues.model_validate(domain.current(row.values)),
        versions={f: row.versions.get(f, 0) for f in domain.FIELDS},
        updated_at=row.updated_at,
    )


async def get(uow: UnitOfWork, user_id: str) -> PreferencesOut:
    return view(await PreferencesRepository(uow.session).get(user_id))


async def change(
    uow: UnitOfWork, user_id: str, changes: dict[str, Any], *, now: datetime, extra_max_bytes: int
) -> PreferencesOut:
    """A write through the REST API: it happened now, so it wins over every earlier one."""
    return view(await write(uow, user_id, changes, now=now, extra_max_bytes=extra_max_bytes))


async def write(
    uow: UnitOfWork,
    user_id: str,
    changes: dict[str, Any],
    *,
    now: datetime,
    extra_max_bytes: int,
    stamp: str | None = None,
) -> Preferences:
    """Apply `changes` written at `stamp` (a device's clock; None: the server's, see
    `domain.server_stamp`), field by field, the later write winning. If a value changed
    (or nobody wrote the record before), the record's version goes up, it takes the user's
    next change sequence number, and the changed fields (only those) go out as
    `preferences.updated` with that number."""
    if "extra" in changes:
        size = len(json.dumps(changes["extra"], separators=(",", ":")).encode())
        if size > extra_max_bytes:
            raise PayloadTooLarge(
                f"'extra' is {size} bytes; at most {extra_max_bytes}",
                {"field": "extra", "max_bytes": extra_max_bytes},
            )
    repo = PreferencesRepository(uow.session)
    row = await repo.get(user_id, for_update=True)
    if row is None:
        row = Preferences(
            user_id=user_id, values={}, versions={}, clocks={}, seq=0, version=0, updated_at=now
        )
        repo.add(row)
    written = domain.apply(
        row.values,
        row.versions,
        row.clocks,
        changes,
        stamp or domain.server_stamp(now, row.clocks),
    )
    row.clocks = written.clocks
    # the first write makes the record (version 1) even if every value stays the default:
    # a device told "applied" must then find the record in the feed
    if written.changed or row.version == 0:
        seq = await next_seq(uow.session, user_id)
        row.values, row.versions, row.updated_at = written.values, written.versions, now
        row.version, row.seq = row.version + 1, seq
        uow.outbox.add(
            AUTH_PREFERENCES,
            PreferencesUpdated(
                fields=written.changed,
                versions={f: written.versions[f] for f in written.changed},
            ),
            user_id=user_id,
            seq=seq,
        )
    await uow.session.flush()
    return row


def _written(row: Preferences | None) -> Preferences | None:
    # a record nobody wrote yet (version 0: every field at its default) is not in the feed;
    # a device without it shows the defaults too
    return row if row is not None and row.version > 0 else None


async def changes(uow: UnitOfWork, user_id: str, *, after: int) -> FeedLines:
    """The user's preferences as a change for sync's pull, if written after `after` (the
    record is one entity: any `limit` of at least 1 takes it)."""
    row = _written(await PreferencesRepository(uow.session).get(user_id))
    if row is None or row.seq <= after:
        return FeedLines(lines=[], seqs=[], has_more=False, last_seq=after)
    values = PreferenceValues.model_validate(domain.current(row.values))
    line = change_line(ENTITY, domain.RECORD_ID, "put", row.version, values)
    return FeedLines(lines=[line], seqs=[row.seq], has_more=False, last_seq=row.seq)


async def versions(uow: UnitOfWork, user_id: str) -> VersionsOut:
    """`[entity, id, version]` of the user's written preferences, for sync's digest."""
    row = _written(await PreferencesRepository(uow.session).get(user_id))
    return VersionsOut(records=[] if row is None else [(ENTITY, domain.RECORD_ID, row.version)])
