"""Preference use cases; the entrypoint commits."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from auth.models import Preferences
from auth.preferences import domain
from auth.preferences.domain import PreferenceValues
from auth.preferences.repository import PreferencesRepository
from auth.preferences.schemas import PreferencesOut
from contracts.events.auth import PreferencesUpdated
from contracts.topics import AUTH_PREFERENCES
from servicekit.errors import PayloadTooLarge
from servicekit.uow import UnitOfWork


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
    """Apply `changes`; the changed fields (only those) go out as `preferences.updated`."""
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
        row = Preferences(user_id=user_id, values={}, versions={}, updated_at=now)
        repo.add(row)
    stored, versions, changed = domain.apply(row.values, row.versions, changes)
    if changed:
        row.values, row.versions, row.updated_at = stored, versions, now
        uow.outbox.add(
            AUTH_PREFERENCES,
            PreferencesUpdated(fields=changed, versions={f: versions[f] for f in changed}),
            user_id=user_id,
        )
    await uow.session.flush()
    return view(row)
