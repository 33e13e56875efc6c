"""The client's address: X-Forwarded-For believed only from a trusted proxy."""

from __future__ import annotations

from ipaddress import ip_network

import httpx
from fastapi import FastAPI, Request

from servicekit.proxies import client_address, client_ip
from servicekit.settings import ServiceSettings

LOOPBACK = [ip_network("127.0.0.1/32"), ip_network("::1/128")]


def test_a_forwarded_address_counts_only_from_a_trusted_peer() -> None:
    spoof = ["6.6.6.6"]
    assert client_address("203.0.113.9", spoof, []) == "203.0.113.9"
    assert client_address("203.0.113.9", spoof, LOOPBACK) == "203.0.113.9"  # not a proxy
    assert client_address("127.0.0.1", ["198.51.100.7"], LOOPBACK) == "198.51.100.7"
    assert client_address("::1", ["198.51.100.7"], LOOPBACK) == "198.51.100.7"
    # the gateway appends its verdict after what the client wrote: only that entry counts,
    # even when the client shares the gateway's (loopback) address
    assert client_address("127.0.0.1", ["6.6.6.6, 127.0.0.1"], LOOPBACK) == "127.0.0.1"
    assert client_address("127.0.0.1", ["6.6.6.6", "198.51.100.7"], LOOPBACK) == "198.51.100.7"
    assert client_address("127.0.0.1", [], LOOPBACK) == "127.0.0.1"
    assert client_address(None, spoof, LOOPBACK) == "unknown"
    assert len(client_address("127.0.0.1", ["x" * 500], LOOPBACK)) == 64


async def test_client_ip_reads_the_apps_trusted_proxies() -> None:
    def app_trusting(*proxies: str) -> FastAPI:
        app = FastAPI()
        app.state.settings = ServiceSettings(trusted_proxies=list(proxies))

        @app.get("/ip")
        async def ip(request: Request) -> dict[str, str]:
            return {"ip": client_ip(request)}

        return app

    forwarded = {"X-Forwarded-For": "6.6.6.6"}
    for app, expected in (
        (app_trusting(), "127.0.0.1"),
        (app_trusting("127.0.0.1"), "6.6.6.6"),
        (app_trusting("10.0.0.0/8"), "127.0.0.1"),
    ):
        transport = httpx.ASGITransport(app=app)  # the peer is 127.0.0.1
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/ip", headers=forwarded)).json() == {"ip": expected}
