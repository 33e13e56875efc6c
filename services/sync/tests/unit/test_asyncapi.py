"""The committed AsyncAPI document is what the service's FastStream broker describes."""

from __future__ import annotations

from pathlib import Path

from servicekit.asyncapi import asyncapi_document, asyncapi_yaml
from sync.main import create_app
from sync.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "asyncapi.yaml"


def test_committed_asyncapi_document_is_up_to_date() -> None:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:19092"))
    document = asyncapi_document(app.state.runtime.broker, f"{app.title} events", app.version)
    assert COMMITTED.read_text() == asyncapi_yaml(document), (
        "regenerate: uv run python -m servicekit.asyncapi sync.main:create_app "
        "services/sync/asyncapi.yaml"
    )
    addresses = {c["address"] for c in document.to_jsonable()["channels"].values()}
    # what sync sends (commands, documents) and what it listens to (answers, changes)
    assert {"chat.command.v1", "auth.command.v1", "sync.document.v1"} <= addresses
    assert {"chat.mutation.v1", "auth.mutation.v1", "chat.message.v1", "auth.user.v1"} <= addresses
