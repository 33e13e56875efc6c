"""A stand-in for the sync API, in memory, for the client's unit tests (the real service is
proven against the client in `tests/test_sync_convergence.py`). It keeps the protocol's
promises: mids applied once and in order, replays, gaps, pending results delivered by pull,
content conflicts on a moved base version, deletes win, tombstones, an expiring cursor."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

CONTENT = {"message": "content", "document": None}  # None: the whole record is content


@dataclass
class Row:
    version: int
    seq: int
    data: dict[str, Any] | None


@dataclass
class FakeSync:
    rows: dict[tuple[str, str, str], Row] = field(default_factory=dict)
    seq: int = 0
    last_mid: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    results: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    undelivered: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    held: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # knobs a test turns
    offline: bool = False
    hold: bool = False  # answer `pending`; `finish_held()` applies later
    lose_responses: int = 0  # push responses dropped after the server applied the push
    expire_cursor: bool = False
    token_ok: str = "token"
    requests: list[str] = field(default_factory=list)
    pushed: list[list[dict[str, Any]]] = field(default_factory=list)

    # -- applying ------------------------------------------------------------------

    def _change(self, key: tuple[str, str, str], row: Row) -> dict[str, Any]:
        change: dict[str, Any] = {"entity": key[0], "id": key[2], "version": row.version}
        if key[1]:
            change["collection"] = key[1]
        if row.data is None:
            change["op"] = "delete"
        else:
            change.update(op="put", data=row.data)
        return change

    def _write(self, key: tuple[str, str, str], data: dict[str, Any] | None) -> Row:
        self.seq += 1
        old = self.rows.get(key)
        row = Row((old.version if old else 0) + 1, self.seq, data)
        self.rows[key] = row
        return row

    def apply(self, m: dict[str, Any]) -> dict[str, Any]:
        key = (m["entity"], m.get("collection", ""), m["id"])
        row = self.rows.get(key)
        if (
            m["entity"] == "memory"
            and m["op"] != "delete"
            and not (m.get("data") or m.get("fields"))
        ):
            return {"status": "rejected", "error": {"code": "VALIDATION_ERROR", "message": "empty"}}
        if m["op"] == "delete":
            if row is None or row.data is None:
                return {"status": "applied", "version": row.version if row else 0}
            return {"status": "applied", "version": self._write(key, None).version}
        if row is not None and row.data is None:
            return {"status": "rejected", "error": {"code": "DELETED", "message": "deleted"}}
        base = m.get("base_version")
        if row is not None and m["entity"] in CONTENT and base is not None and base != row.version:
            return {"status": "conflict", "current": self._change(key, row)}
        if m["op"] == "put":
            if row is not None and row.data == m["data"]:
                return {"status": "applied", "version": row.version}
            return {"status": "applied", "version": self._write(key, dict(m["data"])).version}
        if row is None:
            return {"status": "rejected", "error": {"code": "NOT_FOUND", "message": "no such"}}
        return {
            "status": "applied",
            "version": self._write(key, {**row.data, **m["fields"]}).version,
        }  # type: ignore[dict-item]

    def finish_held(self, mids: set[int] | None = None) -> None:
        for client, m in [h for h in self.held if mids is None or h[1]["mid"] in mids]:
            result = {"mid": m["mid"], **self.apply(m)}
            self.results[(client, m["mid"])] = result
            self.undelivered[client].append(result)
            self.held.remove((client, m))

    def write_elsewhere(self, entity: str, id_: str, data: dict[str, Any] | None) -> int:
        """Another device (or an API call) changes a record."""
        return self._write((entity, "", id_), data).version

    # -- HTTP ----------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.offline:
            raise httpx.ConnectError("offline", request=request)
        self.requests.append(f"{request.method} {request.url.path}")
        if request.headers.get("authorization") != f"Bearer {self.token_ok}":
            return httpx.Response(401, json={"success": False, "error": "UNAUTHORIZED"})
        if request.url.path == "/api/v1/sync/push":
            return self.push(request)
        if request.url.path == "/api/v1/sync/pull":
            return self.pull(request)
        return httpx.Response(404, json={"success": False, "error": "NOT_FOUND"})

    def push(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        client, mutations = body["client_id"], body["mutations"]
        self.pushed.append(mutations)
        first = mutations[0]["mid"]
        if [m["mid"] for m in mutations] != list(range(first, first + len(mutations))):
            return httpx.Response(400, json={"success": False, "error": "VALIDATION_ERROR"})
        if first > self.last_mid[client] + 1:
            return httpx.Response(
                409,
                json={
                    "success": False,
                    "error": "MUTATION_GAP",
                    "message": "gap",
                    "details": {"expected_mid": self.last_mid[client] + 1},
                },
            )
        results = []
        for m in mutations:
            mid = m["mid"]
            if mid <= self.last_mid[client]:
                stored = self.results.get((client, mid), {"mid": mid, "status": "pending"})
                results.append({**stored, "replayed": True})
                continue
            self.last_mid[client] = mid
            if self.hold:
                self.held.append((client, m))
                results.append({"mid": mid, "status": "pending"})
                continue
            result = {"mid": mid, **self.apply(m)}
            self.results[(client, mid)] = result
            results.append(result)
        if self.lose_responses:
            self.lose_responses -= 1
            raise httpx.ReadError("connection reset after the server applied the push")
        return httpx.Response(
            200,
            json={"success": True, "data": {"results": results, "last_mid": self.last_mid[client]}},
        )

    def pull(self, request: httpx.Request) -> httpx.Response:
        if self.expire_cursor and request.url.params["cursor"]:
            self.expire_cursor = False
            return httpx.Response(410, json={"success": False, "error": "CURSOR_EXPIRED"})
        after = int(request.url.params["cursor"] or 0)
        limit = int(request.url.params["limit"])
        client = request.url.params["client_id"]
        rows = sorted(
            ((k, r) for k, r in self.rows.items() if r.seq > after and (after or r.data)),
            key=lambda kr: kr[1].seq,
        )
        page = rows[:limit]
        results, self.undelivered[client] = self.undelivered[client], []
        return httpx.Response(
            200,
            json={
                "success": True,
                "data": {
                    "changes": [self._change(k, r) for k, r in page],
                    "cursor": str(page[-1][1].seq if page else after),
                    "has_more": len(rows) > limit,
                    "last_mids": dict(self.last_mid),
                    "results": results,
                },
            },
        )

    def digest_lines(self) -> list[tuple[str, str, int]]:
        return [
            (k[0], f"{k[1]}/{k[2]}" if k[1] else k[2], r.version)
            for k, r in self.rows.items()
            if r.data is not None
        ]


@pytest.fixture
def server() -> FakeSync:
    return FakeSync()


@pytest.fixture
def transport(server: FakeSync) -> httpx.MockTransport:
    return httpx.MockTransport(server.handle)
