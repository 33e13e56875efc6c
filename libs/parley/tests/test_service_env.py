"""What `parley dev` hands each service process: the services behind the gateway believe its
X-Forwarded-For (loopback), the gateway itself believes no one's."""

from __future__ import annotations

from pathlib import Path

from parley.stack.embedded import EmbeddedStack, Ports
from parley.stack.services import ServiceSpec


def spec(name: str, port: int, tmp_path: Path) -> ServiceSpec:
    return ServiceSpec(
        name=name, port=port, app=f"{name}.main:create_app", root=tmp_path, migrations=None
    )


def test_services_behind_the_gateway_trust_it_and_the_gateway_trusts_no_one(tmp_path: Path) -> None:
    stack = EmbeddedStack(tmp_path, Ports(), lambda _name, _line: None)
    auth, gateway = spec("auth", 8001, tmp_path), spec("gateway", 8000, tmp_path)
    assert stack.service_env(auth, [auth, gateway])["AUTH_TRUSTED_PROXIES"] == "127.0.0.1,::1"
    assert "GATEWAY_TRUSTED_PROXIES" not in stack.service_env(gateway, [auth, gateway])
