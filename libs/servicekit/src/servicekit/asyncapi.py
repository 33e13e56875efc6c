"""Each service's AsyncAPI 3.0 document, generated from its FastStream broker: the topics
its relay publishes (with every event's envelope schema) and the ones it consumes.

    python -m servicekit.asyncapi chat.main:create_app services/chat/asyncapi.yaml
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import yaml
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI


def asyncapi_document(broker: KafkaBroker, title: str, version: str) -> Any:
    """The AsyncAPI 3.0 specification object of `broker` (`.to_yaml()`, `.to_jsonable()`)."""
    return AsyncAPI(broker, title=title, version=version, schema_version="3.0.0").to_specification()


def asyncapi_yaml(spec: Any) -> str:
    """The document as YAML with sorted keys, so regenerating it gives the same file."""
    return str(yaml.safe_dump(spec.to_jsonable(), sort_keys=True, allow_unicode=True))


def main(argv: list[str] | None = None) -> int:
    """Write the AsyncAPI YAML of the service whose app factory is named."""
    parser = argparse.ArgumentParser(
        prog="python -m servicekit.asyncapi", description="Generate a service's AsyncAPI document."
    )
    parser.add_argument("app_factory", help="module:function returning the service's FastAPI app")
    parser.add_argument("output", type=Path, help="where to write the YAML ('-' for stdout)")
    args = parser.parse_args(argv)
    module_name, _, attr = args.app_factory.partition(":")
    app = getattr(importlib.import_module(module_name), attr)()
    spec = asyncapi_document(app.state.runtime.broker, f"{app.title} events", app.version)
    text = asyncapi_yaml(spec)
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
