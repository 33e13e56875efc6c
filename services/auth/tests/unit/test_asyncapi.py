"""The committed AsyncAPI document is what the service's FastStream broker describes."""

from __future__ import annotations

from pathlib import Path

from auth.main import create_app
from auth.settings import Settings
from servicekit.asyncapi import asyncapi_document, asyncapi_yaml

COMMITTED = Path(__file__).resolve().parents[2] / "asyncapi.yaml"


def test_committed_asyncapi_document_is_up_to_date() -> None:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:19092", mail_sink="log"))
    document = asyncapi_document(app.state.runtime.broker, f"{app.title} events", app.version)
    assert COMMITTED.read_text() == asyncapi_yaml(document), (
        "regenerate: uv run python -m servicekit.asyncapi auth.main:create_app "
        "services/auth/asyncapi.yaml"
    )
    published = {c["address"] for c in document.to_jsonable()["channels"].values()}
    assert {"auth.user.v1", "auth.preferences.v1", "auth.flags.v1", "auth.email.v1"} <= published
