"""The read cache in Redis, which the service never needs in order to answer.

Each cached scope is one Redis hash — a conversation's metadata, a user's conversation list,
a conversation's recent message pages, a user's memory searches — whose fields are the
query variants (page, filters). A write deletes the whole hash of every scope it changed,
after its transaction commits, so the next read is fresh. When Redis fails, the failure is
logged and counted and reads go to PostgreSQL for a few seconds before Redis is tried again.
A deletion that failed is remembered and done before Redis answers anything again: Redis
may come back with the entries those writes changed (a network blip, a restart from disk).

A read that misses and a write that invalidates can interleave: the read loads the old rows,
the write commits and deletes the hash, then the read stores what it loaded. So every scope
has a generation, bumped by each invalidation; a miss notes it, and the fill is stored only
if it has not moved (one Lua script), never putting back what a write just made stale.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

CACHE_HITS = Counter("chat_cache_hits_total", "cache reads answered by Redis", ["cache"])
CACHE_MISSES = Counter("chat_cache_misses_total", "cache reads that went to Postgres", ["cache"])
# past this many keys whose deletion failed, the whole prefix is dropped on recovery instead
MAX_PENDING_KEYS = 10_000
CACHE_ERRORS = Counter(
    "chat_cache_errors_total", "Redis failures the cache absorbed", ["operation"]
)


# HSET the fill only if the scope's generation is the one its read saw
_FILL = """
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
GENERATION_TTL = 2 * 24 * 3600  # outlives every cached entry


@dataclass(frozen=True)
class Lookup:
    """What a read found: the cached body, or None and the generation to fill it at."""

    body: bytes | None
    generation: str | None = None


@dataclass(frozen=True)
class Scope:
    """One cached hash: its kind (for metrics and TTL) and its key."""

    kind: str
    key: str
    generation_key: str  # outside the user's keys: a purge of their entries leaves it


class ChatCache:
    def __init__(
        self, redis: Redis, prefix: str, ttls: dict[str, int], retry_after: float = 5.0
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttls = ttls
        self.retry_after = retry_after
        self._down_until = 0.0
        # deletions that failed while Redis was unreachable, to do before trusting it again
        self._pending_keys: set[tuple[str, str]] = set()
        self._pending_users: set[str] = set()
        self._pending_all = False
        self._fill = redis.register_script(_FILL)

    # scopes -------------------------------------------------------------------------------
    def conversation(self, user_id: str, conversation_id: str) -> Scope:
        return self._scope("conversation", f"{user_id}:conv:{conversation_id}")

    def conversation_list(self, user_id: str) -> Scope:
        return self._scope("list", f"{user_id}:list")

    def messages(self, user_id: str, conversation_id: str) -> Scope:
        return self._scope("messages", f"{user_id}:msgs:{conversation_id}")

    def memory_search(self, user_id: str) -> Scope:
        return self._scope("memory_search", f"{user_id}:memsearch")

    def _scope(self, kind: str, name: str) -> Scope:
        return Scope(kind, f"{self.prefix}{name}", f"{self.prefix}gen:{name}")

    # reads and writes ---------------------------------------------------------------------
    async def get(self, scope: Scope, variant: str) -> Lookup:
        """The cached body of `variant` in `scope`, or a miss (also when Redis is
        unavailable) with the generation a `put` of the fresh body must match."""
        if self._skipping() or not await self._caught_up():
            CACHE_MISSES.labels(scope.kind).inc()
            return Lookup(None)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(scope.key, variant)
                pipe.get(scope.generation_key)
                found, generation = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            CACHE_MISSES.labels(scope.kind).inc()
            return Lookup(None)
        (CACHE_HITS if found is not None else CACHE_MISSES).labels(scope.kind).inc()
        if found is not None:
            return Lookup(found.encode() if isinstance(found, str) else found)
        return Lookup(None, _text(generation) or "0")

    async def put(self, scope: Scope, variant: str, body: bytes, lookup: Lookup) -> None:
        """Store the body a miss produced, unless a write invalidated the scope since."""
        if lookup.generation is None or self._skipping() or not await self._caught_up():
            return
        try:
            await self._fill(
                keys=[scope.key, scope.generation_key],
                args=[lookup.generation, variant, body, self.ttls[scope.kind]],
            )
        except (RedisError, OSError) as exc:
            self._failed("put", exc)

    async def invalidate(self, scopes: Iterable[Scope]) -> None:
        """Forget every variant of `scopes` (called after the write committed)."""
        keys = list({(s.key, s.generation_key) for s in scopes})
        if not keys:
            return
        try:
            await self._delete(keys)
        except (RedisError, OSError) as exc:
            self._failed("invalidate", exc)
            self._pending_keys.update(keys)
            if len(self._pending_keys) > MAX_PENDING_KEYS:
                self._pending_all = True
                self._pending_keys.clear()

    async def forget_chat(self, user_id: str, chat_id: str) -> None:
        """Forget what a change to the chat or its messages made stale: the chat, the
        user's list and the chat's message pages."""
        await self.forget_chats([(user_id, chat_id)])

    async def forget_chats(self, chats: Iterable[tuple[str, str]]) -> None:
        """`forget_chat` for many (user, chat) pairs at once (one round trip)."""
        await self.invalidate(
            scope
            for user_id, chat_id in chats
            for scope in (
                self.conversation(user_id, chat_id),
                self.conversation_list(user_id),
                self.messages(user_id, chat_id),
            )
        )

    async def forget_user(self, user_id: str) -> None:
        """Drop everything cached for the user (their data was purged)."""
        try:
            await self._delete_matching(f"{self.prefix}{user_id}:*")
        except (RedisError, OSError) as exc:
            self._failed("forget_user", exc)
            self._pending_users.add(user_id)

    async def _delete(self, keys: list[tuple[str, str]]) -> None:
        """Delete the scopes' hashes and move their generations on (one round trip);
        `keys` are (hash, generation) key pairs."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, generation in keys:
                pipe.delete(key)
                pipe.incr(generation)
                pipe.expire(generation, GENERATION_TTL)
            await pipe.execute()

    async def _delete_matching(self, pattern: str) -> None:
        keys = [k async for k in self.redis.scan_iter(pattern, count=500)]
        if keys:
            await self.redis.delete(*keys)

    async def _caught_up(self) -> bool:
        """Do the deletions that failed earlier; False if Redis is still unreachable."""
        if not (self._pending_all or self._pending_keys or self._pending_users):
            return True
        try:
            if self._pending_all:
                await self._delete_matching(f"{self.prefix}*")
                self._pending_all = False
            if self._pending_keys:
                keys = list(self._pending_keys)  # more may be added while this awaits
                await self._delete(keys)
                self._pending_keys.difference_update(keys)
            while self._pending_users:
                user_id = next(iter(self._pending_users))
                await self._delete_matching(f"{self.prefix}{user_id}:*")
                self._pending_users.discard(user_id)
        except (RedisError, OSError) as exc:
            self._failed("catch_up", exc)
            return False
        log.info("cache back: deletions missed while it was unreachable are done")
        return True

    def _skipping(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(operation).inc()
        self._down_until = time.monotonic() + self.retry_after
        log.warning(
            "cache unavailable, reading from postgres", operation=operation, error=repr(exc)
        )


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
