"""`ParleyClient`: change records locally at once (they are queued durably), and `sync()`
pushes the queue and pulls everything the server has changed since; `listen()` keeps a
socket open and syncs on every poke and every reconnect."""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx

from parley_client.digest import Digest, digest_of
from parley_client.records import ENTITIES, Key, Mutation, Op, Record, record_of_change
from parley_client.store import LocalStore

TokenProvider = Callable[[], str | Awaitable[str]]
MAX_BATCH: Final = 500  # the server's limit per push
CONTENT_ENTITIES: Final = frozenset(("message", "document"))
PULL_LIMIT: Final = 1000


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO: Final = _Auto()
"""Base version of a message or document edit: the version of the record the server last
showed when the mutation is sent (other entities merge per field and send none)."""


class SyncError(Exception):
    """The server refused a request itself (not the network, not overload): `code` is its
    error code (`UNAUTHORIZED`, `VALIDATION_ERROR`, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class SyncUnavailable(Exception):
    """The server could not be reached (or kept answering 5xx/429) through every retry.
    Nothing is lost: the queue waits for the next `sync()`."""


@dataclass(frozen=True)
class Conflict:
    """The server kept its record: `local` is what the app saw (its queued edits on top),
    `current` what the server holds and the store now shows."""

    mutation: Mutation
    local: dict[str, Any] | None
    current: Record


@dataclass(frozen=True)
class Rejection:
    """The server refused the mutation for good (`DELETED`, `VALIDATION_ERROR`, ...)."""

    mutation: Mutation
    code: str
    message: str


@dataclass
class SyncReport:
    """What one `sync()` did. `replayed`: results the server had already recorded (a
    response lost earlier)."""

    sent: int = 0
    applied: int = 0
    conflicts: int = 0
    rejected: int = 0
    pending: int = 0
    replayed: int = 0
    pulled: int = 0
    results: dict[int, str] = field(default_factory=dict)  # mid → final status


@dataclass(frozen=True)
class Backoff:
    """Retries of a request the network or an overloaded server failed: `attempts` in
    all, waits drawn from [0, min(cap, base * 2**n)] (full jitter), or what Retry-After
    says."""

    attempts: int = 6
    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cap)
        return random.uniform(0, min(self.cap, self.base * 2**attempt))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _body(response: httpx.Response) -> dict[str, Any]:
    """The response's data (`{"success": true, "data": ...}` unwrapped)."""
    body = response.json()
    if isinstance(body, dict) and body.get("success") is True and "data" in body:
        return dict(body["data"])
    return dict(body)


def _error(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return "HTTP_ERROR", response.text[:200], {}
    if not isinstance(body, dict):
        return "HTTP_ERROR", str(body)[:200], {}
    return (
        str(body.get("error") or "HTTP_ERROR"),
        str(body.get("message") or ""),
        dict(body.get("details") or {}),
    )


class ParleyClient:
    """One app install's view of one user's data.

    `token_provider` returns a valid access token (it is asked before each request and
    again after a 401; it may be a coroutine function). `db_path` is the SQLite file that
    keeps the records, the queue and the cursor across restarts (`durable=False` trades
    the last changes before a power cut for speed; a killed app loses nothing either way).
    `on_conflict` and `on_rejected` are called (synchronously, during `sync()`, once the
    results are stored) for each such result; `on_result` once for every final result
    (applied, conflict, rejected) with the result as the server sent it. `transport`
    replaces httpx's own (tests, simulations)."""

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider,
        db_path: str | Path,
        client_id: str | None = None,
        *,
        on_conflict: Callable[[Conflict], None] | None = None,
        on_rejected: Callable[[Rejection], None] | None = None,
        on_result: Callable[[Mutation, dict[str, Any]], None] | None = None,
        wait: float = 5.0,
        backoff: Backoff = Backoff(),
        resend_pending_after: float = 30.0,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        durable: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.store = LocalStore(db_path, client_id=client_id, durable=durable)
        self.on_conflict = on_conflict
        self.on_rejected = on_rejected
        self.on_result = on_result
        self.wait = wait
        self.backoff = backoff
        self.resend_pending_after = resend_pending_after
        self._token_provider = token_provider
        self._timeout = timeout
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._http_loop: asyncio.AbstractEventLoop | None = None
        self._sync_lock: asyncio.Lock | None = None

    @property
    def client_id(self) -> str:
        return self.store.client_id

    # -- local changes -----------------------------------------------------------------

    def put(
        self,
        entity: str,
        id: str,
        data: dict[str, Any],
        *,
        collection: str | None = None,
        base_version: int | _Auto | None = AUTO,
    ) -> Mutation:
        """Create or replace a record (the whole record): seen locally at once, queued."""
        return self._enqueue(entity, id, collection, "put", base_version, data=data)

    def patch(
        self,
        entity: str,
        id: str,
        fields: dict[str, Any],
        *,
        collection: str | None = None,
        base_version: int | _Auto | None = AUTO,
    ) -> Mutation:
        """Change only `fields` of a record: seen locally at once, queued."""
        return self._enqueue(entity, id, collection, "patch", base_version, fields=fields)

    def delete(self, entity: str, id: str, *, collection: str | None = None) -> Mutation:
        """Delete a record (deletes win over concurrent edits): gone locally at once, queued."""
        return self._enqueue(entity, id, collection, "delete", None)

    def get(self, entity: str, id: str, *, collection: str | None = None) -> dict[str, Any] | None:
        """The record as this device sees it: the server's, with the queued changes on top."""
        return self.store.view(Key(entity, id, collection or ""))

    def pending(self) -> list[Mutation]:
        """The mutations still without a result, oldest first."""
        return self.store.queued()

    def _enqueue(
        self,
        entity: str,
        id: str,
        collection: str | None,
        op: Op,
        base_version: int | _Auto | None,
        **body: dict[str, Any],
    ) -> Mutation:
        if entity not in ENTITIES:
            raise ValueError(f"unknown entity {entity!r}: one of {sorted(ENTITIES)}")
        if (entity == "document") != (collection is not None):
            raise ValueError("documents need a collection; other entities take none")
        # a base version matters where content conflicts (a message's text, a document);
        # elsewhere fields merge, so an edit need not wait for the version before it
        auto = isinstance(base_version, _Auto) and entity in CONTENT_ENTITIES
        return self.store.enqueue(
            Key(entity, id, collection or ""),
            op,
            base_version=None if isinstance(base_version, _Auto) else base_version,
            auto_base=auto,
            **body,
        )

    # -- sync --------------------------------------------------------------------------

    async def sync(self) -> SyncReport:
        """Push the queue, then pull until the server has nothing more. Raises
        SyncUnavailable when the server cannot be reached (nothing is lost), SyncError
        when it refuses a request outright."""
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        report = SyncReport()
        async with self._sync_lock:
            await self.push(report)
            await self.pull(report)
        return report

    async def push(self, report: SyncReport | None = None) -> SyncReport:
        """Send the queue in batches, oldest first; handle each result."""
        report = report or SyncReport()
        sent: set[int] = set()  # each mutation goes at most once per push (unless refused whole)
        while batch := self._next_batch(sent):
            bases = {m.mid: self._base_of(m) for m in batch if m.auto_base}
            if bases:
                self.store.pin_bases(bases)
            wire = [m.wire(bases.get(m.mid, m.base_version)) for m in batch]
            response = await self._request(
                "POST",
                "/api/v1/sync/push",
                params={"wait": self.wait},
                json={"client_id": self.client_id, "mutations": wire},
                expected=(409,),
            )
            report.sent += len(batch)
            if response.status_code == 409:
                code, message, details = _error(response)
                expected = details.get("expected_mid")
                if code != "MUTATION_GAP" or not isinstance(expected, int):
                    raise SyncError(409, code, message)
                if not self.store.renumber(batch[0].mid, expected):
                    raise SyncError(
                        409, code, f"{message} (expected {expected}, sent {batch[0].mid})"
                    )
                continue
            sent.update(m.mid for m in batch)
            self._handle_results(_body(response).get("results", []), report)
        return report

    def _next_batch(self, sent: set[int]) -> list[Mutation]:
        """The queued mutations to send now, in mid order: not those the server holds
        already (unless their result is overdue) or that this push sent, and none after an
        edit that must wait for the version an earlier edit of the same record produces."""
        stale = time.time() - self.resend_pending_after
        unresolved: set[Key] = set()
        batch: list[Mutation] = []
        for mutation in self.store.queued():
            waiting = mutation.mid in sent or (
                mutation.accepted_at is not None and mutation.accepted_at > stale
            )
            if not waiting:
                if mutation.auto_base and mutation.key in unresolved:
                    break
                if batch and mutation.mid != batch[-1].mid + 1:
                    break  # the server takes consecutive mids only
                batch.append(mutation)
                if len(batch) == MAX_BATCH:
                    break
            elif batch:
                break  # a held mutation between two sendable ones: keep mids in one run
            unresolved.add(mutation.key)
        return batch

    def _base_of(self, mutation: Mutation) -> int | None:
        if mutation.op == "delete":
            return None
        record = self.store.record(mutation.key)
        return None if record is None or record.deleted else record.version

    async def pull(self, report: SyncReport | None = None) -> SyncReport:
        """Every change since the cursor, page by page (a full snapshot when there is no
        cursor, or when the server says it expired), and this client's late results."""
        report = report or SyncReport()
        while True:
            cursor = self.store.cursor
            response = await self._request(
                "GET",
                "/api/v1/sync/pull",
                params={"cursor": cursor, "limit": PULL_LIMIT, "client_id": self.client_id},
                expected=(410,),
            )
            if response.status_code == 410:
                self.store.reset_cursor()
                continue
            page = _body(response)
            changes = [record_of_change(c) for c in page.get("changes", [])]
            self.store.apply_page(changes, str(page["cursor"]), forget_all_first=cursor == "")
            report.pulled += len(changes)
            self._handle_results(page.get("results", []), report)
            if not page.get("has_more"):
                return report

    def _handle_results(self, results: list[dict[str, Any]], report: SyncReport) -> None:
        callbacks: list[Callable[[], None]] = []
        with self.store.transaction():
            self._store_results(results, report, callbacks)
        for callback in callbacks:  # once stored: a callback that fails loses no result
            callback()

    def _store_results(
        self,
        results: list[dict[str, Any]],
        report: SyncReport,
        callbacks: list[Callable[[], None]],
    ) -> None:
        accepted: list[int] = []
        for result in results:
            mid, status = int(result["mid"]), str(result["status"])
            mutation = self.store.mutation(mid)
            if mutation is None:
                continue  # known already (a replay, or the same result by push and pull)
            if result.get("replayed"):
                report.replayed += 1
            if status == "pending":
                accepted.append(mid)
                report.pending += 1
                continue
            if status == "applied":
                self.store.confirm(mid, result.get("version"))
                report.applied += 1
            elif status == "conflict":
                conflict = self._conflict(mutation, result.get("current") or {})
                report.conflicts += 1
                if self.on_conflict is not None:
                    callbacks.append(partial(self.on_conflict, conflict))
            else:
                error = result.get("error") or {}
                self.store.resolve(mid, None)
                report.rejected += 1
                rejection = Rejection(
                    mutation, str(error.get("code", "")), str(error.get("message", ""))
                )
                if self.on_rejected is not None:
                    callbacks.append(partial(self.on_rejected, rejection))
            report.results[mid] = status
            if self.on_result is not None:
                callbacks.append(partial(self.on_result, mutation, result))
        if accepted:
            self.store.mark_accepted(accepted, time.time())

    def _conflict(self, mutation: Mutation, current: dict[str, Any]) -> Conflict:
        local = self.store.view(mutation.key)
        if "data" not in current and "op" not in current:  # the bare record
            current = {"data": current, "version": current.get("version", 0)}
        server = record_of_change(
            {
                "entity": mutation.key.entity,
                "id": mutation.key.id,
                "collection": mutation.key.collection,
                **current,
            }
        )
        self.store.pin_chain(mutation.key, mutation.mid, mutation.base_version)
        self.store.resolve(mutation.mid, server)
        return Conflict(mutation, local, server)

    # -- digest ------------------------------------------------------------------------

    def digest(self) -> Digest:
        """The digest of the live records as the server last showed them."""
        return digest_of(self.store.live_versions())

    async def server_digest(self) -> Digest:
        body = _body(await self._request("GET", "/api/v1/sync/digest"))
        return Digest(count=int(body["count"]), digest=str(body["digest"]))

    async def verify(self) -> bool:
        """Does this device hold exactly the server's records, at the server's versions?
        (Meaningful right after a `sync()` that left nothing queued.)"""
        return await self.server_digest() == self.digest()

    # -- live pokes --------------------------------------------------------------------

    async def listen(self, *, on_sync: Callable[[SyncReport], None] | None = None) -> None:
        """Keep the sync socket open and sync on every poke and on every (re)connect, with
        backoff between connection attempts; runs until cancelled. Pokes that arrive while
        a sync runs are folded into one more sync after it."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException
        from websockets.typing import Subprotocol

        wanted = asyncio.Event()
        syncer = asyncio.create_task(self._sync_when(wanted, on_sync))
        url = "ws" + self.base_url.removeprefix("http") + "/api/v1/sync/ws"
        attempt = 0
        try:
            while True:
                try:
                    token = await self._token()
                    protocols = [Subprotocol("bearer"), Subprotocol(token)]
                    async with connect(
                        url, subprotocols=protocols, open_timeout=self._timeout
                    ) as socket:
                        attempt = 0
                        wanted.set()
                        async for message in socket:
                            frame = json.loads(message)
                            if isinstance(frame, dict) and frame.get("type") == "poke":
                                wanted.set()
                except (OSError, TimeoutError, WebSocketException, ValueError):
                    pass
                await asyncio.sleep(self.backoff.delay(attempt))
                attempt = min(attempt + 1, 10)
        finally:
            syncer.cancel()
            await asyncio.gather(syncer, return_exceptions=True)

    async def _sync_when(
        self, wanted: asyncio.Event, on_sync: Callable[[SyncReport], None] | None
    ) -> None:
        while True:
            await wanted.wait()
            wanted.clear()
            try:
                report = await self.sync()
            except (SyncUnavailable, SyncError):
                continue  # the next poke or reconnect tries again
            if on_sync is not None:
                on_sync(report)

    # -- HTTP --------------------------------------------------------------------------

    async def _token(self) -> str:
        token = self._token_provider()
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop:
            self._http = httpx.AsyncClient(
                base_url=self.base_url, timeout=self._timeout, transport=self._transport
            )
            self._http_loop = loop
        return self._http

    async def _request(
        self, method: str, path: str, *, expected: tuple[int, ...] = (), **kwargs: Any
    ) -> httpx.Response:
        """The request, retried with backoff through network errors, 5xx and 429, once
        more with a fresh token after a 401; a 2xx or an `expected` status is returned,
        any other answer raised as SyncError."""
        signed_again = False
        failure = "no attempt"
        attempt = 0
        while attempt < self.backoff.attempts:
            retry_after = None
            try:
                headers = {"Authorization": f"Bearer {await self._token()}"}
                response = await self._client().request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status < 300 or status in expected:
                    return response
                if status == 401 and not signed_again:
                    signed_again = True
                    continue
                if status != 429 and status < 500:
                    raise SyncError(status, *_error(response)[:2])
                failure, retry_after = f"HTTP {status}", _retry_after(response)
            await asyncio.sleep(self.backoff.delay(attempt, retry_after))
            attempt += 1
        raise SyncUnavailable(f"{method} {path}: {failure} ({self.backoff.attempts} attempts)")

    async def aclose(self) -> None:
        """Close the connections and the store."""
        if self._http is not None and self._http_loop is asyncio.get_running_loop():
            await self._http.aclose()
        self._http = None
        self.store.close()
