"""Parley's offline-first client: records change locally at once and are queued durably in
SQLite; `sync()` pushes the queue and pulls the server's changes; `listen()` syncs live."""

from parley_client.background import BackgroundSync
from parley_client.client import (
    AUTO,
    Backoff,
    Conflict,
    ParleyClient,
    Rejection,
    SyncError,
    SyncReport,
    SyncUnavailable,
)
from parley_client.digest import Digest, digest_of
from parley_client.hlc import Hlc, tick
from parley_client.records import Key, Mutation, Record
from parley_client.store import LocalStore

__all__ = [
    "AUTO",
    "BackgroundSync",
    "Backoff",
    "Conflict",
    "Digest",
    "Hlc",
    "Key",
    "LocalStore",
    "Mutation",
    "ParleyClient",
    "Record",
    "Rejection",
    "SyncError",
    "SyncReport",
    "SyncUnavailable",
    "digest_of",
    "tick",
]
