"""The committed AsyncAPI document is what the service's FastStream broker describes."""

from __future__ import annotations

from pathlib import Path

from export.main import create_app
from export.settings import Settings
from servicekit.asyncapi import asyncapi_document, asyncapi_yaml

COMMITTED = Path(__file__).resolve().parents[2] / "asyncapi.yaml"


def test_committed_asyncapi_document_is_up_to_date() -> None:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:19092"))
    document = asyncapi_document(app.state.runtime.broker, f"{app.title} events", app.version)
    assert COMMITTED.read_text() == asyncapi_yaml(document), (
        "regenerate: uv run python -m servicekit.asyncapi export.main:create_app "
        "services/export/asyncapi.yaml"
    )
    channels = document.to_jsonable()["channels"].values()
    assert "export.job.v1" in {c["address"] for c in channels}
    assert "auth.user.v1" in {c["address"] for c in channels}
