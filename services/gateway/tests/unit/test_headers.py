"""Header hygiene both ways."""

from __future__ import annotations

from ipaddress import ip_network

from gateway.proxy.headers import client_ip, client_response_headers, upstream_request_headers


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [n for n, _ in headers]


def test_upstream_gets_the_clients_headers_minus_hop_by_hop_plus_forwarding() -> None:
    incoming = [
        (b"host", b"api.example"),
        (b"authorization", b"Bearer t"),
        (b"connection", b"keep-alive, x-secret-hop"),
        (b"x-secret-hop", b"1"),
        (b"keep-alive", b"5"),
        (b"te", b"trailers"),
        (b"upgrade", b"h2c"),
        (b"x-internal-token", b"forged"),
        (b"x-request-id", b"theirs"),
        (b"x-forwarded-for", b"10.0.0.9"),
        (b"content-length", b"12"),
        (b"cookie", b"a=b"),
    ]
    out = dict(
        upstream_request_headers(
            incoming,
            client="192.0.2.1",
            scheme="https",
            request_id="ours",
            trace={"traceparent": "00-x"},
        )
    )
    assert out[b"authorization"] == b"Bearer t"
    assert out[b"cookie"] == b"a=b"
    for dropped in (
        b"connection",
        b"x-secret-hop",
        b"keep-alive",
        b"te",
        b"upgrade",
        b"x-internal-token",
        b"host",
    ):
        assert dropped not in out
    assert out[b"x-request-id"] == b"ours"
    assert out[b"x-forwarded-for"] == b"10.0.0.9, 192.0.2.1"
    assert out[b"x-forwarded-proto"] == b"https"
    assert out[b"x-forwarded-host"] == b"api.example"
    assert out[b"traceparent"] == b"00-x"
    assert out[b"content-length"] == b"12"


def test_a_websocket_handshake_is_negotiated_anew() -> None:
    incoming = [
        (b"sec-websocket-key", b"k"),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", b"p"),
        (b"authorization", b"Bearer t"),
    ]
    out = names(
        upstream_request_headers(
            incoming, client="c", scheme="http", request_id="r", trace={}, websocket=True
        )
    )
    assert b"authorization" in out
    assert not [n for n in out if n.startswith(b"sec-websocket")]


def test_the_client_gets_the_upstreams_headers_minus_hop_by_hop_and_our_own() -> None:
    upstream = [
        (b"Content-Type", b"application/json"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"close"),
        (b"date", b"x"),
        (b"server", b"uvicorn"),
        (b"x-request-id", b"r"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"content-length", b"5"),
    ]
    out = client_response_headers(upstream)
    assert out == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"content-length", b"5"),
    ]


def test_the_client_ip_is_the_peer_unless_proxies_are_trusted() -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.5")]
    balancers = [ip_network("10.0.0.0/8")]
    assert client_ip("10.0.0.1", headers, []) == "10.0.0.1"  # a client may write anything
    assert client_ip("10.0.0.1", headers, balancers) == "203.0.113.5"  # what it appended
    assert client_ip("198.51.100.9", headers, balancers) == "198.51.100.9"  # not a balancer
    # only the balancer's own entry: never further left, where the client may write
    assert (
        client_ip("10.0.0.1", [(b"x-forwarded-for", b"203.0.113.5, 10.1.1.1")], balancers)
        == "10.1.1.1"
    )
