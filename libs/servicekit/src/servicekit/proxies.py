"""Who is calling, by address: the TCP peer, or — only when that peer is a proxy this service
trusts (`<PREFIX>TRUSTED_PROXIES`: the gateway, a load balancer) — the last `X-Forwarded-For`
entry, the one that proxy appended. Anything a client writes there itself is ignored, so
nobody picks their own address to dodge a per-IP limit.

Only the trusted peer's own entry is read, never further left: in `parley dev` the clients
and the gateway share 127.0.0.1, so walking on past "trusted" entries would reach whatever
the client wrote. The gateway appends the address it judged (with its own trusted load
balancers), so a service behind it reads the gateway's verdict.

    from servicekit.proxies import client_ip
    ip = client_ip(request)        # a Request or a WebSocket
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from starlette.requests import HTTPConnection

Network = IPv4Network | IPv6Network
UNKNOWN = "unknown"
MAX_ADDRESS_LENGTH = 64  # an address ends up in rate-limit keys and logs


def _trusted(address: str, trusted: Sequence[Network | str]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False  # not an address at all: nothing we configured
    # str entries: settings copied with model_copy(update=...) are not validated again
    return any(parsed in (n if not isinstance(n, str) else ip_network(n)) for n in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network | str]
) -> str:
    """The client's address given the TCP `peer`, the `X-Forwarded-For` header values in
    order, and the trusted proxy networks: the last X-Forwarded-For entry when the peer is
    trusted, else the peer."""
    if not peer:
        return UNKNOWN
    if not trusted or not _trusted(peer, trusted):
        return peer[:MAX_ADDRESS_LENGTH]
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    return (hops[-1] if hops else peer)[:MAX_ADDRESS_LENGTH]


def client_ip(connection: HTTPConnection) -> str:
    """The caller's address (see `client_address`), with the trusted proxies of the app's
    settings (`app.state.settings.trusted_proxies`, set by create_service_app)."""
    settings: Any = getattr(connection.app.state, "settings", None)
    trusted: Sequence[Network | str] = getattr(settings, "trusted_proxies", ()) or ()
    peer = connection.client.host if connection.client else None
    return client_address(peer, connection.headers.getlist("x-forwarded-for"), trusted)
