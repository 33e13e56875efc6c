"""Revoked sessions: access tokens refused before they expire, open sockets closed.

Auth publishes `sessions.revoked` on `auth.session.v1` when sessions end (logout, refresh
token reuse, password reset, account deleted). Every service consumes it in its own consumer
group and records one marker per session in Redis,

    parley:revoked:session:<session id>  →  reason      (expires at access_expires_by + margin)

and publishes a notice on the `parley:revoked` channel. Auth, which ends the sessions, also
records them itself right after its commit (`record_after_commit`), so they are refused at
once rather than once the event has gone round. The markers are one namespace shared
by every service: each writes the same idempotent value, so a marker exists as soon as the
fastest consumer has seen the event, whichever services run; the gateway (no broker) reads
them without writing. A consumer group hands an event to one replica only, so the markers
live in Redis, not in a process; the notice reaches every replica, which closes its sockets
of those sessions.

A request pays one Redis round trip (`Revocations.check`, called by `TokenVerifier.verify`;
the gateway reads the marker in the same round trip as its rate-limit counters instead).
When Redis does not answer, tokens are accepted (logged, and Redis is left alone for a couple
of seconds): a Redis outage must not sign every user out, and a token still ends at its `exp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import SessionsRevoked
from servicekit.errors import Unauthorized
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)

KEY_PREFIX = "parley:revoked:session:"
NOTICE_CHANNEL = "parley:revoked"
# Markers outlive `access_expires_by` a little: verifiers accept a token a few seconds past
# its `exp` (leeway), and clocks differ.
MARGIN = timedelta(seconds=60)
# The WebSocket close code of a revoked session (4000-4999: the application's own).
CLOSE_REVOKED = 4001


class TokenRevoked(Unauthorized):
    """The token's session was ended (signed out, password reset, account deleted)."""

    code = "TOKEN_REVOKED"

    @classmethod
    def refusal(cls) -> TokenRevoked:
        return cls("this session has ended: sign in again")


def marker_key(session_id: str) -> str:
    """The Redis key that marks `session_id` revoked."""
    return KEY_PREFIX + session_id


class Revocations:
    """Records and checks revoked sessions in Redis; wakes this process's sockets of them.

    `watching(session_id)` gives an `asyncio.Event` set when the session is revoked; one
    pub/sub connection per process serves every watcher (started by `start`)."""

    def __init__(
        self, redis: Redis, reconnect_delay: float = 1.0, retry_seconds: float = 2.0
    ) -> None:
        self.redis = redis
        self.reconnect_delay = reconnect_delay
        self.retry_seconds = retry_seconds
        self._unchecked_until = float("-inf")  # after a Redis failure: accept, don't ask
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._listening: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    # -- recording (the consumers) ----------------------------------------------------------

    async def record(self, session_ids: Iterable[str], reason: str, until: datetime) -> None:
        """Mark the sessions revoked until `until` (+ margin) and tell every process."""
        ids = list(session_ids)
        if not ids:
            return
        expires_at = int((until + MARGIN).timestamp())
        async with self.redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.set(marker_key(session_id), reason, exat=expires_at)
            pipe.publish(NOTICE_CHANNEL, json.dumps({"session_ids": ids}))
            await pipe.execute()

    def record_after_commit(
        self, uow: UnitOfWork, session_ids: list[str], reason: str, until: datetime
    ) -> None:
        """Record the sessions revoked as soon as `uow` commits: the process that ends them
        does not wait for its own event to come round, so their tokens are refused at once by
        every service and the gateway. A Redis failure is only logged (the ending stays
        committed): the event's consumers record the same markers once Redis answers."""

        async def record() -> None:
            try:
                await self.record(session_ids, reason, until)
            except RedisError as exc:
                log.warning(
                    "cannot record revocations at commit: the event's consumers will",
                    error=repr(exc),
                    sessions=len(session_ids),
                )

        uow.after_commit(record)

    async def on_event(self, uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
        """The `auth.session.v1` handler: record `sessions.revoked` (idempotent: a redelivery
        sets the same markers again)."""
        payload = envelope.payload
        if not isinstance(payload, SessionsRevoked):
            return
        try:
            await self.record(payload.session_ids, payload.reason, payload.access_expires_by)
        except RedisError as exc:  # transient for the consumer: rewind, deliver again later
            raise ConnectionError(f"cannot record revocations: {exc!r}") from exc
        log.info(
            "sessions revoked",
            user_id=envelope.user_id,
            reason=payload.reason,
            sessions=len(payload.session_ids),
        )

    # -- checking (every request) ------------------------------------------------------------

    @property
    def answering(self) -> bool:
        """False while Redis is left alone after a failed check (tokens are then accepted
        unchecked): a caller with a record of its own (auth's sessions table) asks that."""
        return time.monotonic() >= self._unchecked_until

    async def is_revoked(self, session_id: str | None) -> bool:
        """True when the session has a revocation marker (False if Redis does not answer;
        then Redis is not asked again for `retry_seconds`, so requests do not each wait)."""
        if session_id is None or time.monotonic() < self._unchecked_until:
            return False
        try:
            return bool(await self.redis.exists(marker_key(session_id)))
        except RedisError as exc:
            self._unchecked_until = time.monotonic() + self.retry_seconds
            log.warning(
                "cannot check revocations: tokens accepted meanwhile",
                error=repr(exc),
                retry_in=self.retry_seconds,
            )
            return False

    async def check(self, session_id: str | None) -> None:
        """TokenRevoked if the session was revoked."""
        if await self.is_revoked(session_id):
            raise TokenRevoked.refusal()

    # -- watching (live sockets) -------------------------------------------------------------

    async def start(self) -> None:
        """Listen for notices (in the background, reconnecting while Redis is away)."""
        if self._listening is None:
            self._listening = asyncio.create_task(self._listen(), name="revocation-notices")

    async def stop(self) -> None:
        """Stop listening for notices (at shutdown)."""
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listening
            self._listening = None

    @contextlib.asynccontextmanager
    async def watching(self, session_id: str | None) -> AsyncIterator[asyncio.Event]:
        """An event set once `session_id` is revoked, for as long as the block runs."""
        revoked = asyncio.Event()
        if session_id is None:
            yield revoked
            return
        self._watchers.setdefault(session_id, set()).add(revoked)
        try:
            # revoked between the handshake's check and now: the notice went by already
            if await self.is_revoked(session_id):
                revoked.set()
            yield revoked
        finally:
            watchers = self._watchers.get(session_id)
            if watchers is not None:
                watchers.discard(revoked)
                if not watchers:
                    del self._watchers[session_id]

    def _wake(self, session_ids: Iterable[str]) -> None:
        for session_id in session_ids:
            for revoked in self._watchers.get(session_id, ()):
                revoked.set()

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTICE_CHANNEL)
                self._subscribed.set()
                await self._recheck()  # notices sent while we were away are lost: look again
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._wake(_notice_ids(message.get("data")))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: watch again once it is back
                log.warning("revocation notices interrupted", error=repr(exc))
                await asyncio.sleep(self.reconnect_delay)
            finally:
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _recheck(self) -> None:
        ids = list(self._watchers)
        if not ids:
            return
        values = await self.redis.mget([marker_key(i) for i in ids])
        self._wake(i for i, value in zip(ids, values, strict=True) if value is not None)


def _notice_ids(data: object) -> list[str]:
    try:
        ids = json.loads(data)["session_ids"]  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        return []
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
