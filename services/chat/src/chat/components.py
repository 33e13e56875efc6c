"""What chat builds once per process and every entrypoint uses. A leaf: it imports the parts
it holds, never an endpoint or `chat.main`, so endpoints can depend on it without a cycle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from chat.assistant.service import Replies
from chat.cache import ChatCache
from chat.live.hub import LiveHub
from chat.settings import Settings
from servicekit.blobs import BlobStore
from servicekit.clock import utc_now
from servicekit.revocation import Revocations
from servicekit.runtime import ServiceRuntime
from servicekit.uow import UnitOfWork


@dataclass
class Components:
    """What chat's endpoints use, built once per process (see chat.main)."""

    settings: Settings
    runtime: ServiceRuntime
    cache: ChatCache
    fuzzy_titles: bool
    blobs: BlobStore
    hub: LiveHub
    replies: Replies
    ingest_blobs: BlobStore  # where sync puts the large import batches it sends
    background: list[asyncio.Task[None]] = field(default_factory=list)
    clock: Callable[[], datetime] = field(default=utc_now)

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    def reader(self) -> UnitOfWork:
        """For a read that needs no snapshot: no BEGIN/ROLLBACK (servicekit.uow)."""
        return self.runtime.reader()

    @property
    def revocations(self) -> Revocations:
        """Revoked sessions (servicekit.revocation): live sockets watch theirs."""
        assert self.runtime.revocations is not None, "the runtime is not started"
        return self.runtime.revocations
