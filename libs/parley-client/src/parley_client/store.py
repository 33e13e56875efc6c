"""The client's SQLite file: records as the server last showed them, the mutation queue,
the pull cursor, the client id and the clock. Every change is its own committed transaction,
so a process killed at any instant reopens with nothing queued lost and nothing half-done."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from parley_client.hlc import Hlc, tick
from parley_client.records import Key, Mutation, Op, Record, applied, local_view

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    entity TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL,
    version INTEGER NOT NULL, data TEXT,
    PRIMARY KEY (entity, collection, id)
);
CREATE TABLE IF NOT EXISTS queue (
    mid INTEGER PRIMARY KEY,
    entity TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL,
    hlc TEXT NOT NULL, data TEXT, fields TEXT,
    base_version INTEGER, auto_base INTEGER NOT NULL,
    accepted_at REAL
);
CREATE INDEX IF NOT EXISTS queue_by_key ON queue (entity, collection, id, mid);
"""


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def _unjson(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


def _record(row: sqlite3.Row) -> Record:
    return Record(
        Key(row["entity"], row["id"], row["collection"]), row["version"], _unjson(row["data"])
    )


def _mutation(row: sqlite3.Row) -> Mutation:
    return Mutation(
        mid=row["mid"],
        key=Key(row["entity"], row["id"], row["collection"]),
        op=row["op"],
        hlc=row["hlc"],
        data=_unjson(row["data"]),
        fields=_unjson(row["fields"]),
        base_version=row["base_version"],
        auto_base=bool(row["auto_base"]),
        accepted_at=row["accepted_at"],
    )


class LocalStore:
    """One client's state on disk. Safe to share between threads (one lock)."""

    def __init__(
        self,
        path: str | Path,
        *,
        client_id: str | None = None,
        durable: bool = True,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.path = str(path)
        self._wall_ms = wall_ms
        self._lock = threading.RLock()
        self._depth = 0  # transactions open (nested ones join the outermost)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed change survives a power cut; NORMAL (`durable=False`): it
        # survives the app being killed, the last ones may not survive the power going
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self._db.execute(statement)
        with self.transaction():
            stored = self._meta("client_id")
            if stored is None:
                stored = client_id or uuid.uuid4().hex
                self._set_meta("client_id", stored)
            elif client_id is not None and client_id != stored:
                raise ValueError(
                    f"{self.path} belongs to client {stored!r}, not {client_id!r}: "
                    "a client id is stable per store"
                )
        self.client_id: str = stored

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction around everything done inside it (nested ones join it): the
        results of one response are stored together, or not at all."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- identity, cursor ---------------------------------------------------------------

    @property
    def cursor(self) -> str:
        """The pull position ('' = none yet: the next pull is a full snapshot)."""
        with self._lock:
            return self._meta("cursor") or ""

    # -- the queue ------------------------------------------------------------------------

    def enqueue(
        self,
        key: Key,
        op: Op,
        *,
        data: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        base_version: int | None = None,
        auto_base: bool = False,
    ) -> Mutation:
        """Number, stamp and queue a mutation, committed before this returns."""
        with self.transaction() as db:
            mid = int(self._meta("next_mid") or 1)
            last = self._meta("hlc")
            hlc = tick(None if last is None else Hlc.parse(last), self._wall_ms())
            self._set_meta("next_mid", str(mid + 1))
            self._set_meta("hlc", str(hlc))
            db.execute(
                "INSERT INTO queue (mid, entity, collection, id, op, hlc, data, fields, "
                "base_version, auto_base) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    mid, key.entity, key.collection, key.id, op, str(hlc),
                    _json(data), _json(fields), base_version, int(auto_base),
                ),
            )  # fmt: skip
        return Mutation(
            mid, key, op, str(hlc), data, fields, base_version=base_version, auto_base=auto_base
        )

    def queued(self) -> list[Mutation]:
        """Every mutation without a result yet, in mid order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM queue ORDER BY mid").fetchall()
        return [_mutation(r) for r in rows]

    def mutation(self, mid: int) -> Mutation | None:
        """The queued mutation `mid` (None once it has its result)."""
        with self._lock:
            row = self._db.execute("SELECT * FROM queue WHERE mid = ?", (mid,)).fetchone()
        return None if row is None else _mutation(row)

    def pin_bases(self, bases: dict[int, int | None]) -> None:
        """Fix the base version of mutations about to be sent: a blind retry must send
        exactly what the first attempt sent."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE queue SET base_version = ?, auto_base = 0 WHERE mid = ?",
                [(base, mid) for mid, base in bases.items()],
            )

    def pin_chain(self, key: Key, after_mid: int, base: int | None) -> None:
        """A mutation based on `base` conflicted: the edits queued after it on the same
        record build on what the app saw then, so they are based on `base` too (and
        conflict in turn, instead of silently overwriting what the server has)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE queue SET base_version = ?, auto_base = 0 WHERE entity = ? AND "
                "collection = ? AND id = ? AND mid > ? AND auto_base = 1",
                (base, key.entity, key.collection, key.id, after_mid),
            )

    def queued_on(self, key: Key) -> list[Mutation]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM queue WHERE entity = ? AND collection = ? AND id = ? ORDER BY mid",
                (key.entity, key.collection, key.id),
            ).fetchall()
        return [_mutation(r) for r in rows]

    def mark_accepted(self, mids: Iterable[int], at: float) -> None:
        """The server holds these (`pending`): their results come by pull."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE queue SET accepted_at = ? WHERE mid = ?", [(at, m) for m in mids]
            )

    def renumber(self, first: int, expected: int) -> bool:
        """The server never received `first` or anything after it and expects `expected`:
        number those mutations from `expected` on (they keep their order). False when
        there is nothing to close (`expected` is not below `first`)."""
        shift = first - expected
        if shift <= 0:
            return False
        with self.transaction() as db:
            # through negative numbers, so no two rows share a mid halfway
            db.execute("UPDATE queue SET mid = -(mid - ?) WHERE mid >= ?", (shift, first))
            db.execute("UPDATE queue SET mid = -mid WHERE mid < 0")
            top = db.execute("SELECT coalesce(max(mid), 0) FROM queue").fetchone()[0]
            self._set_meta("next_mid", str(max(int(top) + 1, expected)))
        return True

    def resolve(self, mid: int, server: Record | None) -> Mutation | None:
        """Drop the mutation's queue entry (None if it has none: a result seen twice) and
        store what the server now holds for its record: `server` (a conflict's current
        record), or None for an applied result without a record (see `confirm`)."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM queue WHERE mid = ?", (mid,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM queue WHERE mid = ?", (mid,))
            if server is not None:
                self._put_record(server)
        return _mutation(row)

    def confirm(self, mid: int, version: int | None) -> Mutation | None:
        """The mutation was applied: drop it from the queue and apply it to the record the
        store holds, at the server's new version (a pull brings the server's exact record
        after it; an older version than the one held changes nothing)."""
        with self.transaction() as db:
            row = db.execute("SELECT * FROM queue WHERE mid = ?", (mid,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM queue WHERE mid = ?", (mid,))
            mutation = _mutation(row)
            held = self._record(mutation.key)
            if version is not None and (held is None or version > held.version):
                base = None if held is None else held.data
                self._put_record(Record(mutation.key, version, applied(base, mutation)))
        return mutation

    # -- records ---------------------------------------------------------------------------

    def _record(self, key: Key) -> Record | None:
        row = self._db.execute(
            "SELECT * FROM records WHERE entity = ? AND collection = ? AND id = ?",
            (key.entity, key.collection, key.id),
        ).fetchone()
        return None if row is None else _record(row)

    def _put_record(self, record: Record) -> None:
        self._db.execute(
            "INSERT INTO records (entity, collection, id, version, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (entity, collection, id) DO UPDATE "
            "SET version = excluded.version, data = excluded.data",
            (
                record.key.entity, record.key.collection, record.key.id,
                record.version, _json(record.data),
            ),
        )  # fmt: skip

    def record(self, key: Key) -> Record | None:
        """The record as the server last showed it."""
        with self._lock:
            return self._record(key)

    def view(self, key: Key) -> dict[str, Any] | None:
        """The record as the app sees it: the server's, with the queued mutations on top."""
        with self._lock:
            return local_view(self._record(key), self.queued_on(key))

    def records(self, entity: str | None = None, collection: str | None = None) -> list[Record]:
        """Every record the server showed (tombstones included), optionally of one kind."""
        sql, args = "SELECT * FROM records WHERE 1 = 1", list[str]()
        if entity is not None:
            sql, args = sql + " AND entity = ?", [*args, entity]
        if collection is not None:
            sql, args = sql + " AND collection = ?", [*args, collection]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY entity, collection, id", args).fetchall()
        return [_record(r) for r in rows]

    def live_versions(self) -> list[tuple[str, str, int]]:
        """`(entity, id, version)` of every live record the server showed: the digest's
        input (a document's id there is `collection/id`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT entity, collection, id, version FROM records WHERE data IS NOT NULL"
            ).fetchall()
        return [(r[0], f"{r[1]}/{r[2]}" if r[1] else r[2], r[3]) for r in rows]

    def apply_page(
        self, changes: Iterable[Record], cursor: str, *, forget_all_first: bool = False
    ) -> None:
        """One page of a pull, with its cursor, in one transaction (a kill in between
        pulls the page again). `forget_all_first`: the page starts a full snapshot."""
        with self.transaction() as db:
            if forget_all_first:
                db.execute("DELETE FROM records")
            for record in changes:
                self._put_record(record)
            self._set_meta("cursor", cursor)

    def reset_cursor(self) -> None:
        """Pull from scratch next time (the server said the cursor expired)."""
        with self.transaction():
            self._set_meta("cursor", "")
