"""The gatekeeper's and the OpenAPI merge's pure steps: which counters a request is charged
to, when a declared body is refused, and how clashing components are renamed."""

from __future__ import annotations

from typing import Any

from gateway.docs.merge import add_components, clashes, renamed_for
from gateway.edge.gatekeeper import body_refusal, buckets_for
from gateway.limits.domain import Bucket, RateSpec
from gateway.routes.domain import Policy, Route
from servicekit.auth import Caller

PER_IP, SIGN_IN, PER_USER = RateSpec(100, 60), RateSpec(5, 60), RateSpec(50, 60)
CHATS = Route("/api/v1/chats", "chat")
ALICE = Caller(user_id="alice", session_id=None, role="user", token_id=None)


def policy(*, sign_in: bool = False) -> Policy:
    return Policy(route=CHATS, needs_token=not sign_in, sign_in=sign_in, rate_limited=True)


def charged(p: Policy, caller: Caller | None) -> list[Bucket]:
    return buckets_for(p, "10.0.0.1", caller, per_ip=PER_IP, sign_in=SIGN_IN, per_user=PER_USER)


def test_an_anonymous_request_is_charged_to_its_address() -> None:
    assert charged(policy(), None) == [Bucket("ip:10.0.0.1", PER_IP)]


def test_a_known_caller_is_charged_to_the_user_too() -> None:
    assert charged(policy(), ALICE) == [
        Bucket("ip:10.0.0.1", PER_IP),
        Bucket("user:alice", PER_USER),
    ]


def test_a_sign_in_is_charged_to_the_address_sign_in_counter() -> None:
    assert charged(policy(sign_in=True), None) == [
        Bucket("ip:10.0.0.1", PER_IP),
        Bucket("sign-in:10.0.0.1", SIGN_IN),
    ]


def test_a_declared_body_over_the_limit_is_refused() -> None:
    refusal = body_refusal(b"101", 100)
    assert refusal is not None
    assert refusal.details == {"max_bytes": 100}


def test_a_body_within_the_limit_or_not_declared_passes() -> None:
    assert body_refusal(b"100", 100) is None
    assert body_refusal(None, 100) is None
    assert body_refusal(b"lots", 100) is None  # left to the proxy's counting


# --- OpenAPI merge -----------------------------------------------------------------------


def schemas(**items: Any) -> dict[str, Any]:
    return {"components": {"schemas": items}}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_a_same_name_with_the_same_definition_is_no_clash() -> None:
    merged = {"schemas": {"Error": {"type": "object"}}}
    assert clashes(schemas(Error={"type": "object"}), "chat", merged, {}) == {}


def test_a_same_name_defined_differently_is_renamed_for_the_later_service() -> None:
    merged = {"schemas": {"UserOut": {"type": "string"}}}
    assert clashes(schemas(UserOut={"type": "object"}), "chat", merged, {}) == {
        "#/components/schemas/UserOut": "#/components/schemas/ChatUserOut"
    }


def test_a_rename_reaches_the_schemas_that_refer_to_it() -> None:
    merged = {"schemas": {"UserOut": {"type": "string"}, "Ok": {"$ref": ref("UserOut")["$ref"]}}}
    document, renames = renamed_for(
        schemas(UserOut={"type": "object"}, Ok={"properties": {"data": ref("UserOut")}}),
        "chat",
        merged,
    )
    assert renames == {
        "#/components/schemas/UserOut": "#/components/schemas/ChatUserOut",
        "#/components/schemas/Ok": "#/components/schemas/ChatOk",
    }
    assert document["components"]["schemas"]["Ok"] == {"properties": {"data": ref("ChatUserOut")}}


def test_components_are_added_under_their_new_names_and_never_overwritten() -> None:
    merged: dict[str, Any] = {"schemas": {"UserOut": {"type": "string"}}}
    add_components(
        merged,
        schemas(UserOut={"type": "object"}, Error={"type": "object"}),
        {"#/components/schemas/UserOut": "#/components/schemas/ChatUserOut"},
    )
    assert merged == {
        "schemas": {
            "UserOut": {"type": "string"},
            "ChatUserOut": {"type": "object"},
            "Error": {"type": "object"},
        }
    }
