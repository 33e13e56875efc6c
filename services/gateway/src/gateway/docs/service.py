"""The merged OpenAPI document, fetched from each upstream and cached.

A service that does not answer keeps its last good document in the merge; the cache is
refreshed every `refresh_seconds` (sooner while a service is missing)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import structlog

from gateway.docs.merge import Document, merge_documents

log = structlog.get_logger(__name__)
SERVICE_DOCUMENT = "/api/v1/openapi.json"  # where servicekit serves each service's document
RETRY_INCOMPLETE_SECONDS = 5.0


class MergedOpenApi:
    def __init__(
        self,
        http: httpx.AsyncClient,
        upstreams: dict[str, str],
        routed: Callable[[str], bool],
        refresh_seconds: float = 60.0,
    ) -> None:
        self.http = http
        self.upstreams = upstreams
        self.routed = routed
        self.refresh_seconds = refresh_seconds
        self._last_good: dict[str, Document] = {}
        self._rendered: bytes | None = None
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    async def rendered(self) -> bytes:
        """The merged document as JSON bytes."""
        if self._rendered is None or time.monotonic() >= self._fresh_until:
            async with self._lock:
                if self._rendered is None or time.monotonic() >= self._fresh_until:
                    await self._refresh()
        assert self._rendered is not None
        return self._rendered

    async def _refresh(self) -> None:
        names = list(self.upstreams)
        answers = await asyncio.gather(*(self._fetch(n) for n in names))
        complete = True
        for name, document in zip(names, answers, strict=True):
            if document is not None:
                self._last_good[name] = document
            elif name not in self._last_good:
                complete = False
        documents = {n: self._last_good[n] for n in names if n in self._last_good}
        merged = merge_documents(documents, routed=self.routed)
        merged["info"]["x-services"] = sorted(documents)
        self._rendered = json.dumps(merged, separators=(",", ":")).encode()
        ttl = (
            self.refresh_seconds
            if complete
            else min(self.refresh_seconds, RETRY_INCOMPLETE_SECONDS)
        )
        self._fresh_until = time.monotonic() + ttl

    async def _fetch(self, name: str) -> Document | None:
        url = self.upstreams[name] + SERVICE_DOCUMENT
        try:
            response = await self.http.get(url, timeout=5.0)
            response.raise_for_status()
            document: Document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.info("no OpenAPI document from an upstream", upstream=name, error=repr(exc))
            return None
        return document
