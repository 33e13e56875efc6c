"""Pull and digest: the owners' feeds (chat and auth over internal HTTP, sync's documents
from its own rows) merged behind one cursor, without copying anyone's data."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime

from contracts.feed import FeedLines
from servicekit.errors import ServiceError, ServiceUnavailable, ValidationFailed
from servicekit.uow import UnitOfWork
from sync.changes import domain
from sync.changes.schemas import DigestOut, PulledPage, PullMeta
from sync.clients.repository import ClientRepository
from sync.documents import service as documents
from sync.mutations.domain import result_of
from sync.mutations.repository import MutationRepository
from sync.mutations.schemas import MutationResult
from sync.owner_feeds import OwnerFeed, OwnerUnavailable
from sync.settings import Settings


class CursorExpired(ServiceError):
    status_code, code = 410, "CURSOR_EXPIRED"


class Changes:
    """Pull's use cases; `feeds` are the other owners by source name (chat, auth)."""

    def __init__(
        self, settings: Settings, feeds: Mapping[str, OwnerFeed], clock: Callable[[], datetime]
    ) -> None:
        self.settings = settings
        self.feeds = feeds
        self.clock = clock

    def cursor(self, text: str | None) -> domain.Cursor:
        """The cursor a client sent; 400 when malformed, 410 when older than retention."""
        try:
            cursor = domain.Cursor.decode(text)
        except domain.InvalidCursor as exc:
            raise ValidationFailed(str(exc), {"field": "cursor"}) from None
        if cursor.expired(int(self.clock().timestamp()), self.settings.tombstone_retention_seconds):
            raise CursorExpired(
                "this cursor is older than deletes are kept: pull again without a cursor",
                {"retention_seconds": self.settings.tombstone_retention_seconds},
            )
        return cursor

    async def pull(
        self,
        uow: UnitOfWork,
        user_id: str,
        cursor: domain.Cursor,
        limit: int,
        client_id: str | None,
    ) -> PulledPage:
        """The next page of the user's changes after `cursor`; with `client_id`, that
        client's finished results not yet handed over (marked handed over by this
        transaction: the entrypoint commits it once the page is complete)."""
        names = list(self.feeds)
        # every read ends before any failure is raised: the session must not be closed
        # under a query still running
        fetched = await asyncio.gather(
            *(self.feeds[n].changes(user_id, cursor.position(n), limit) for n in names),
            documents.changed_after(uow, user_id, cursor.position("sync"), limit),
            return_exceptions=True,
        )
        for outcome in fetched:
            if isinstance(outcome, OwnerUnavailable):
                raise ServiceUnavailable(
                    "some of your data cannot be read right now: pull again shortly",
                    {"reason": str(outcome)},
                ) from outcome
            if isinstance(outcome, BaseException):
                raise outcome
        pages = {
            name: page
            for name, page in zip([*names, "sync"], fetched, strict=True)
            if isinstance(page, FeedLines)
        }
        merged = domain.merge(pages, cursor, limit, int(self.clock().timestamp()))
        clients = ClientRepository(uow.session)
        results: list[MutationResult] = []
        if client_id:
            await clients.seen(user_id, client_id)
            delivered = await MutationRepository(uow.session).take_undelivered(
                user_id, client_id, self.settings.results_per_pull
            )
            results = [
                MutationResult.model_validate(result_of(m.mid, m.status, m.result))
                for m in delivered
            ]
        meta = PullMeta(
            cursor=merged.cursor.encode(),
            has_more=merged.has_more,
            last_mids=await clients.last_mids(user_id),
            results=results,
        )
        return PulledPage(merged.changes, meta)

    async def digest(self, uow: UnitOfWork, user_id: str) -> DigestOut:
        """Count and SHA-256 of the user's live records, as a client computes them."""
        try:
            owned = await asyncio.gather(*(f.versions(user_id) for f in self.feeds.values()))
        except OwnerUnavailable as exc:
            raise ServiceUnavailable("the digest cannot be computed right now") from exc
        records: list[tuple[str, str, int]] = [r for rs in owned for r in rs]
        records += [
            (documents.ENTITY, domain.document_key(collection, id_), version)
            for collection, id_, version in await documents.live_versions(uow, user_id)
        ]
        count, hexdigest = domain.digest(records)
        return DigestOut(count=count, digest=hexdigest)
