"""The service chassis as an operator and a client meet it: a real app over the real
PostgreSQL, Redis and broker, with its probes, metrics, request ids and AsyncAPI document."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from contracts.envelope import Envelope, EventPayload
from parley.stack.embedded import InfraUrls
from parley.stack.ports import free_port
from parley.testing import serving as running
from servicekit import asyncapi
from servicekit.errors import NotFound
from servicekit.runtime import Subscription, create_service_app
from servicekit.uow import UnitOfWork

from .conftest import Service, make_topic, service_settings

pytestmark = pytest.mark.integration

SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def routes() -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/chats/{chat_id}")
    async def get_chat(chat_id: str) -> dict[str, str]:
        raise NotFound(f"no conversation {chat_id}")

    @router.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("a bug")

    return router


async def poll(
    client: httpx.AsyncClient,
    path: str,
    until: Callable[[httpx.Response], bool],
    seconds: float = 30.0,
) -> httpx.Response:
    """GET `path` until `until(response)`; the last response either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        response = await client.get(path)
        if until(response) or loop.time() > deadline:
            return response
        await asyncio.sleep(0.2)


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(service.settings, title="Test", routers=[routes()])
    async with running(app) as c:
        yield c


# --- probes and metrics ---------------------------------------------------------------------


async def test_liveness_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


async def test_ready_once_postgres_redis_and_kafka_answer(client: httpx.AsyncClient) -> None:
    response = await poll(client, "/health/ready", lambda r: r.status_code == 200)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert {name: c["status"] for name, c in body["components"].items()} == {
        "postgres": "up",
        "redis": "up",
        "kafka": "up",
    }


async def test_metrics_show_requests_and_the_outbox_backlog(
    service: Service, client: httpx.AsyncClient
) -> None:
    await client.get("/health/live")
    backlog = f'parley_outbox_pending{{schema="{service.settings.db_schema}"}} 0.0'

    response = await poll(client, "/metrics", lambda r: backlog in r.text)

    assert response.status_code == 200
    assert backlog in response.text
    assert re.search(
        r'parley_http_requests_total\{method="GET",route="/health/live",'
        r'status="200"\} [1-9]',
        response.text,
    )

    # a path no route matches is counted under one label, not one series per raw path
    assert (await client.get("/no/such/route")).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert re.search(
        r'parley_http_requests_total\{method="GET",route="unmatched",'
        r'status="404"\} [1-9]',
        metrics,
    )
    assert "/no/such/route" not in metrics


def get_latency(metrics: str) -> tuple[float, float]:
    """(requests observed, of which under 10 s) for GET, from the Prometheus text."""
    samples: dict[tuple[str, str | None], float] = {}
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            if s.labels.get("method") == "GET":  # summed over routes
                key = (s.name, s.labels.get("le"))
                samples[key] = samples.get(key, 0.0) + s.value
    return (
        samples.get(("parley_http_request_seconds_count", None), 0.0),
        samples.get(("parley_http_request_seconds_bucket", "10.0"), 0.0),
    )


async def test_request_latency_is_recorded_as_the_requests_own_duration(
    client: httpx.AsyncClient,
) -> None:
    before = get_latency((await client.get("/metrics")).text)
    await client.get("/health/live")
    after = get_latency((await client.get("/metrics")).text)

    observed, quick = after[0] - before[0], after[1] - before[1]
    assert observed == 2  # the first /metrics call and /health/live
    assert quick == observed  # in-process calls: a far bigger figure means a broken clock


async def test_not_ready_names_redis_when_redis_is_down(service: Service) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    settings = service.settings.model_copy(update={"redis_url": dead_redis, "relay_enabled": False})
    app = create_service_app(settings, title="Test")

    async with running(app) as client:
        response = await poll(
            client, "/health/ready", lambda r: r.json()["components"]["kafka"]["status"] == "up"
        )

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    components = body["components"]
    assert components["redis"]["status"] == "down"
    assert components["redis"]["error"]
    assert components["postgres"]["status"] == "up"
    assert components["kafka"]["status"] == "up"


# --- request ids ----------------------------------------------------------------------------


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    responses = [
        await client.get("/health/live"),
        await client.get("/api/v1/chats/c1"),
        await client.get("/no/such/route"),
        await client.get("/api/v1/boom"),
    ]

    assert [r.status_code for r in responses] == [200, 404, 404, 500]
    ids = [r.headers.get("x-request-id") for r in responses]
    assert all(i and SAFE_REQUEST_ID.match(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    assert responses[3].json()["error"] == "INTERNAL_ERROR"


async def test_a_safe_incoming_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "web-42.a:b_c"})

    assert response.headers["x-request-id"] == "web-42.a:b_c"


@pytest.mark.parametrize("unsafe", ["has spaces in it", "x" * 300, "evil\tvalue", "a/b?c=d"])
async def test_an_unsafe_incoming_request_id_is_replaced(
    client: httpx.AsyncClient, unsafe: str
) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": unsafe})

    replaced = response.headers["x-request-id"]
    assert replaced != unsafe
    assert SAFE_REQUEST_ID.match(replaced)


async def test_openapi_document_is_served_under_api_v1(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "Test"
    assert "/api/v1/chats/{chat_id}" in document["paths"]
    assert "/health/ready" in document["paths"]


# --- AsyncAPI -------------------------------------------------------------------------------


async def on_event(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """Only the document matters in these tests."""


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("%5B", "[").replace("%5D", "]")]
    return node


async def test_asyncapi_documents_published_and_consumed_topics(infra: InfraUrls) -> None:
    published, consumed = await make_topic(infra.kafka), await make_topic(infra.kafka)
    app = create_service_app(
        service_settings(infra, "public"),
        title="Test",
        publishes=[published],
        subscriptions=[Subscription(consumed, on_event)],
    )

    document = asyncapi.asyncapi_document(app.state.runtime.broker, "x", "1").to_jsonable()

    assert document["asyncapi"] == "3.0.0"
    actions = {
        (document["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"], op["action"])
        for op in document["operations"].values()
    }
    assert (published.name, "send") in actions
    assert (consumed.name, "receive") in actions
    sent = [op for op in document["operations"].values() if op["action"] == "send"]
    assert len(sent) == len(published.events)  # one documented message per event type
    for op in sent:
        message = resolve(document, resolve(document, op["messages"][0]["$ref"])["$ref"])
        schema = resolve(document, message["payload"]["$ref"])
        assert {"event_id", "seq", "payload", "user_id", "type"} <= set(schema["properties"])


def test_asyncapi_cli_writes_the_services_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the factory module is imported by name, as `python -m servicekit.asyncapi` would
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delitem(sys.modules, "asyncapi_app", raising=False)
    output = tmp_path / "asyncapi.yaml"

    assert asyncapi.main(["asyncapi_app:create_app", str(output)]) == 0

    document = yaml.safe_load(output.read_text())
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Sample events"
    assert document["info"]["version"] == "1.2.3"
    addresses = {c["address"] for c in document["channels"].values()}
    # every service consumes auth.session.v1 too: revoked sessions (servicekit.revocation)
    assert addresses == {"auth.user.v1", "chat.message.v1", "auth.session.v1"}
    monkeypatch.delitem(sys.modules, "asyncapi_app", raising=False)
