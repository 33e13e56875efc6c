"""For apps without an event loop (Flask, scripts): the client's `listen()` on a thread of
its own, and `sync()` callable from any thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from parley_client.client import ParleyClient, SyncReport


class BackgroundSync:
    """Keeps `client` in sync from a daemon thread (its own event loop) until `stop()`.
    `put`/`patch`/`delete`/`get` stay callable from any thread: the store has its lock."""

    def __init__(self, client: ParleyClient, *, listen: bool = True) -> None:
        self.client = client
        self._listen = listen
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="parley-sync", daemon=True)
        self._listening: Future[Any] | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self) -> BackgroundSync:
        self._thread.start()
        if self._listen:
            self._listening = asyncio.run_coroutine_threadsafe(self.client.listen(), self._loop)
        return self

    def sync(self, timeout: float | None = 60.0) -> SyncReport:
        """Sync now and wait for it (SyncUnavailable / SyncError as `ParleyClient.sync`)."""
        return asyncio.run_coroutine_threadsafe(self.client.sync(), self._loop).result(timeout)

    def stop(self) -> None:
        """Stop listening, close the client, end the thread."""
        if self._listening is not None:
            self._listening.cancel()  # cancels the task on the loop thread
        asyncio.run_coroutine_threadsafe(self.client.aclose(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
