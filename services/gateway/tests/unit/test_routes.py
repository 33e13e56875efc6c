"""The route table: who owns which path, and what the gateway asks of a request to it."""

from __future__ import annotations

import pytest

from gateway.routes.domain import RouteTable


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/api/v1/auth/login", "auth"),
        ("/api/v1/preferences", "auth"),
        ("/api/v1/preferences/reset", "auth"),
        ("/api/v1/flags", "auth"),
        ("/.well-known/jwks.json", "auth"),
        ("/api/v1/chats", "chat"),
        ("/api/v1/chats/1/messages", "chat"),
        ("/api/v1/folders/x", "chat"),
        ("/api/v1/memories", "chat"),
        ("/api/v1/search", "chat"),
        ("/api/v1/attachments/a", "chat"),
        ("/api/v1/export/jobs", "export"),
        ("/api/v1/exports", "export"),
        ("/api/v1/sync/push", "sync"),
        ("/api/v1/imports", "sync"),
    ],
)
def test_paths_go_to_their_owner(path: str, upstream: str) -> None:
    route = RouteTable().route(path)
    assert route is not None
    assert route.upstream == upstream


@pytest.mark.parametrize(
    "path",
    [
        "/internal/admins",
        "/internal",
        "/api/v1/chatsx",
        "/api/v1/authz/login",
        "/api/v2/chats",
        "/api/v1/auth/../../internal/admins",
        "/api/v1/chats/./x",
        "/",
        "/api/v1",
    ],
)
def test_internal_unknown_and_dotted_paths_have_no_route(path: str) -> None:
    assert RouteTable().route(path) is None


def test_sign_in_routes_are_public_and_stricter() -> None:
    table = RouteTable()
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/anonymous",
        "/api/v1/auth/password/forgot",
    ):
        policy = table.policy("POST", path)
        assert not policy.needs_token
        assert policy.sign_in
        assert policy.rate_limited
    jwks = table.policy("GET", "/.well-known/jwks.json")
    assert not jwks.needs_token
    assert not jwks.sign_in


def test_everything_else_needs_a_token() -> None:
    table = RouteTable()
    assert table.policy("GET", "/api/v1/auth/me").needs_token
    assert table.policy("GET", "/api/v1/auth/login").needs_token  # only POST is public
    assert table.policy("POST", "/api/v1/auth/logout").needs_token
    assert table.policy("GET", "/api/v1/chats").needs_token


def test_health_and_metrics_are_not_limited_but_docs_are() -> None:
    table = RouteTable()
    assert not table.policy("GET", "/health/ready").rate_limited
    assert not table.policy("GET", "/metrics").rate_limited
    docs = table.policy("GET", "/api/v1/openapi.json")
    assert docs.route is None
    assert docs.rate_limited
    assert not docs.needs_token


def test_uploads_are_marked() -> None:
    table = RouteTable()
    attachments = table.route("/api/v1/attachments")
    chats = table.route("/api/v1/chats")
    assert attachments is not None
    assert attachments.uploads
    assert chats is not None
    assert not chats.uploads


def test_a_signed_export_link_needs_no_token_but_the_rest_of_export_does() -> None:
    table = RouteTable()
    assert not table.policy("GET", "/api/v1/export/01j9/download").needs_token
    assert not table.policy("HEAD", "/api/v1/export/01j9/download").needs_token
    assert table.policy("DELETE", "/api/v1/export/01j9/download").needs_token
    assert table.policy("GET", "/api/v1/export/01j9").needs_token
    assert table.policy("GET", "/api/v1/export/01j9/download/x").needs_token
