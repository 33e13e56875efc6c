"""The client's push/pull loop against the in-memory stand-in of the sync API (conftest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.typing import Subprotocol

from parley_client import (
    BackgroundSync,
    Backoff,
    Conflict,
    ParleyClient,
    Rejection,
    SyncError,
    SyncReport,
    SyncUnavailable,
    digest_of,
)

from .conftest import FakeSync

FAST = Backoff(attempts=3, base=0.001, cap=0.01)


def make_client(
    tmp_path: Path, transport: httpx.MockTransport, name: str = "phone", **kwargs: Any
) -> ParleyClient:
    return ParleyClient(
        "http://parley.test",
        lambda: "token",
        tmp_path / f"{name}.db",
        client_id=name,
        transport=transport,
        backoff=FAST,
        **kwargs,
    )


async def test_offline_changes_are_kept_and_sent_once_online(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport)
    server.offline = True
    client.put("conversation", "c1", {"title": "Trip"})
    client.put("message", "m1", {"conversation_id": "c1", "role": "user", "content": "hi"})
    with pytest.raises(SyncUnavailable):
        await client.sync()
    assert [m.mid for m in client.pending()] == [1, 2]
    assert client.get("conversation", "c1") == {"title": "Trip"}

    server.offline = False
    report = await client.sync()
    assert (report.applied, client.pending()) == (2, [])
    assert client.get("message", "m1") == {"conversation_id": "c1", "role": "user", "content": "hi"}
    assert client.digest() == digest_of(server.digest_lines())
    assert client.store.record(next(iter(_keys(client, "conversation")))).version == 1  # type: ignore[union-attr]


def _keys(client: ParleyClient, entity: str) -> list[Any]:
    return [r.key for r in client.store.records(entity)]


async def test_a_lost_response_is_retried_blindly_and_applied_once(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport)
    client.put("folder", "f1", {"title": "Work"})
    client.patch("folder", "f1", {"title": "Work stuff"})
    server.lose_responses = 1
    report = await client.sync()
    # a folder's fields merge: the patch goes with the put, and both answers were lost
    assert [len(batch) for batch in server.pushed] == [2, 2]
    assert report.replayed == 2
    assert report.applied == 2
    assert server.rows[("folder", "", "f1")].version == 2  # one put, one patch: two versions
    assert client.get("folder", "f1") == {"title": "Work stuff"}
    assert client.digest() == digest_of(server.digest_lines())


async def test_a_chain_of_edits_is_based_on_the_versions_it_produced(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport)
    client.put("message", "m1", {"content": "a"})
    client.patch("message", "m1", {"content": "ab"})
    client.patch("message", "m1", {"content": "abc"})
    report = await client.sync()
    assert report.conflicts == 0
    assert report.applied == 3
    assert [[m.get("base_version") for m in batch] for batch in server.pushed] == [
        [None],
        [1],
        [2],
    ]


async def test_a_content_conflict_reports_both_sides_and_keeps_the_servers(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    conflicts: list[Conflict] = []
    client = make_client(tmp_path, transport, on_conflict=conflicts.append)
    server.write_elsewhere("message", "m1", {"content": "first"})
    await client.sync()
    server.write_elsewhere("message", "m1", {"content": "edited on the laptop"})
    client.patch("message", "m1", {"content": "edited on the phone"})
    client.patch("message", "m1", {"content": "edited on the phone, twice"})
    report = await client.sync()
    assert report.conflicts == 2  # the second edit built on the first: it conflicts too
    assert conflicts[0].local == {"content": "edited on the phone, twice"}
    assert conflicts[0].current.version == 2
    assert conflicts[0].current.data == {"content": "edited on the laptop"}
    assert client.get("message", "m1") == {"content": "edited on the laptop"}
    assert server.rows[("message", "", "m1")].data == {"content": "edited on the laptop"}


async def test_a_rejected_mutation_is_reported_and_does_not_block_the_queue(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    rejections: list[Rejection] = []
    client = make_client(tmp_path, transport, on_rejected=rejections.append)
    server.write_elsewhere("folder", "f1", None)  # deleted elsewhere
    client.patch("folder", "f1", {"title": "renamed"})
    client.put("folder", "f2", {"title": "New"})
    report = await client.sync()
    assert [(r.mutation.mid, r.code) for r in rejections] == [(1, "DELETED")]
    assert report.results == {1: "rejected", 2: "applied"}
    assert client.get("folder", "f1") is None
    assert client.pending() == []


async def test_pending_results_arrive_by_pull(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport)
    server.hold = True
    client.put("memory", "k1", {"question": "q", "answer": "a"})
    report = await client.sync()
    assert report.pending == 1
    assert [m.mid for m in client.pending()] == [1]
    again = await client.sync()
    assert again.sent == 0  # the server holds it: nothing is sent twice
    server.hold = False
    server.finish_held()
    report = await client.sync()
    assert report.results == {1: "applied"}
    assert client.pending() == []
    assert client.digest() == digest_of(server.digest_lines())


async def test_an_overdue_pending_result_is_asked_for_again(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport, resend_pending_after=0)
    server.hold = True
    client.put("folder", "f1", {"title": "x"})
    await client.sync()
    server.hold = False
    server.finish_held()
    server.undelivered.clear()  # the pull that carried the result was lost
    report = await client.sync()
    assert report.replayed == 1
    assert report.results == {1: "applied"}


async def test_a_gap_renumbers_what_the_server_never_received(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport)
    client.put("folder", "f1", {"title": "one"})
    await client.sync()
    client.put("folder", "f2", {"title": "two"})
    client.store.renumber(first=2, expected=2)  # nothing to do: numbering is right
    client.store._db.execute("UPDATE queue SET mid = 7")  # as if mids 2..6 vanished locally
    report = await client.sync()
    assert report.results == {2: "applied"}
    assert server.last_mid["phone"] == 2
    assert client.put("folder", "f3", {"title": "three"}).mid == 3


async def test_an_expired_cursor_starts_over_from_a_snapshot(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport)
    server.write_elsewhere("folder", "f1", {"title": "a"})
    server.write_elsewhere("folder", "f2", {"title": "b"})
    await client.sync()
    server.write_elsewhere("folder", "f2", None)
    server.rows.pop(("folder", "", "f2"))  # its tombstone expired
    server.expire_cursor = True
    await client.sync()
    assert [k.id for k in _keys(client, "folder")] == ["f1"]
    assert client.digest() == digest_of(server.digest_lines())


async def test_a_pull_pages_through_a_long_history(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    for n in range(2500):
        server.write_elsewhere("message", f"m{n}", {"content": str(n)})
    client = make_client(tmp_path, transport)
    report = await client.sync()
    assert report.pulled == 2500
    assert server.requests.count("GET /api/v1/sync/pull") == 3
    assert client.digest() == digest_of(server.digest_lines())


async def test_a_large_queue_goes_in_batches_of_at_most_500(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport, durable=False)
    for n in range(1200):
        client.put("document", f"t{n}", {"text": str(n)}, collection="todos")
    report = await client.sync()
    assert [len(b) for b in server.pushed] == [500, 500, 200]
    assert report.applied == 1200
    assert client.pending() == []


async def test_a_refused_token_is_asked_for_again_once(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    tokens = iter(["stale", "token"])
    client = ParleyClient(
        "http://parley.test", lambda: next(tokens), tmp_path / "c.db", transport=transport
    )
    await client.sync()
    server.token_ok = "other"
    with pytest.raises(SyncError) as refused:
        await ParleyClient(
            "http://parley.test", lambda: "token", tmp_path / "c.db", transport=transport
        ).sync()
    assert refused.value.status == 401
    assert refused.value.code == "UNAUTHORIZED"


def test_documents_need_a_collection_and_entities_must_be_known(tmp_path: Path) -> None:
    client = ParleyClient("http://x", lambda: "t", tmp_path / "c.db")
    with pytest.raises(ValueError, match="collection"):
        client.put("document", "d1", {})
    with pytest.raises(ValueError, match="collection"):
        client.put("folder", "f1", {}, collection="todos")
    with pytest.raises(ValueError, match="unknown entity"):
        client.put("todo", "t1", {})
    assert client.pending() == []


def test_an_app_without_an_event_loop_syncs_through_a_background_thread(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    background = BackgroundSync(make_client(tmp_path, transport), listen=False).start()
    try:
        background.client.put("preferences", "me", {"theme_mode": "dark"})
        report = background.sync()
    finally:
        background.stop()
    assert report.applied == 1
    assert server.rows[("preferences", "", "me")].data == {"theme_mode": "dark"}


async def test_resends_around_a_finished_mutation_keep_mids_consecutive(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    client = make_client(tmp_path, transport, resend_pending_after=0)
    server.hold = True
    for n in range(3):
        client.put("folder", f"f{n}", {"title": str(n)})
    await client.sync()
    server.finish_held({2})
    await client.pull()
    assert [m.mid for m in client.pending()] == [1, 3]
    server.hold = False
    server.finish_held()
    server.pushed.clear()
    report = await client.sync()
    assert [[m["mid"] for m in batch] for batch in server.pushed] == [[1], [3]]
    assert report.results == {1: "applied", 3: "applied"}


async def test_listen_syncs_on_connect_on_each_poke_and_after_a_reconnect(
    tmp_path: Path, server: FakeSync, transport: httpx.MockTransport
) -> None:
    import asyncio

    from websockets.asyncio.server import ServerConnection, serve

    connections: list[ServerConnection] = []
    protocols: list[str | None] = []
    changed = asyncio.Event()

    async def socket(ws: ServerConnection) -> None:
        connections.append(ws)
        changed.set()
        protocols.append(ws.request.headers.get("sec-websocket-protocol") if ws.request else None)
        await ws.send('{"type": "connected"}')
        await ws.wait_closed()

    async def until(done: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not done():
                await changed.wait()
                changed.clear()

    synced: list[int] = []

    def on_sync(report: SyncReport) -> None:
        synced.append(report.pulled)
        changed.set()

    async with serve(socket, "127.0.0.1", 0, subprotocols=[Subprotocol("bearer")]) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        client = ParleyClient(
            f"http://127.0.0.1:{port}",
            lambda: "token",
            tmp_path / "c.db",
            transport=transport,
            backoff=FAST,
        )
        listening = asyncio.create_task(client.listen(on_sync=on_sync))
        try:
            await until(lambda: len(synced) == 1)  # the sync on connect
            server.write_elsewhere("folder", "f1", {"title": "from the laptop"})
            await connections[0].send('{"type": "poke"}')
            await until(lambda: len(synced) == 2)
            assert client.get("folder", "f1") == {"title": "from the laptop"}
            server.write_elsewhere("folder", "f2", {"title": "while away"})
            await connections[0].close()  # the server goes away: reconnect, pull again
            await until(lambda: len(connections) == 2 and len(synced) == 3)
            assert client.get("folder", "f2") == {"title": "while away"}
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
    assert protocols == ["bearer, token", "bearer, token"]
