"""One OpenAPI document for the whole public API, merged from the services' own documents.

Paths are merged as they are (each service owns distinct prefixes); a path the gateway does
not route (`/internal/*`, a service's health and metrics) is left out. Components are merged
without clobbering: a name two services define differently is renamed for the later service
(`UserOut` → `ChatUserOut`) and that service's `$ref`s are rewritten to match."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Document = dict[str, Any]
ALIAS_NOTE = (
    "Every public route of Parley, as the gateway serves it. Each `/api/v1/...` "
    "path also answers as `/v1/...` (the paths SpeechBot's client calls, e.g. the "
    "WebSocket `/v1/chats/{chat_id}/ws`); the canonical `/api/v1/...` path is the "
    "one documented here."
)


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                renames.get(v, v)
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v, renames)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _free_name(name: str, service: str, taken: Mapping[str, Any]) -> str:
    candidate = service[:1].upper() + service[1:] + name
    n = 2
    while candidate in taken:
        candidate = f"{service[:1].upper()}{service[1:]}{name}{n}"
        n += 1
    return candidate


def _unique_operation(
    operation: dict[str, Any], service: str, method: str, seen: set[str]
) -> dict[str, Any]:
    """OpenAPI wants operation ids unique across the document; two services (or one route
    serving several methods) may repeat one."""
    operation_id = operation["operationId"]
    candidate, n = operation_id, 1
    while candidate in seen:
        candidate = f"{service}_{operation_id}_{method}" + (f"_{n}" if n > 1 else "")
        n += 1
    seen.add(candidate)
    return operation if candidate == operation_id else {**operation, "operationId": candidate}


def merge_documents(
    documents: Mapping[str, Document],
    *,
    routed: Callable[[str], bool],
    title: str = "Parley API",
    version: str = "1",
) -> Document:
    """The merged document of `documents` (service name → its OpenAPI document), keeping
    only the paths `routed` says the gateway forwards. Services are merged in the order
    given; the first keeps its component names."""
    merged: Document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": ALIAS_NOTE},
        "paths": {},
        "components": {},
    }
    tags: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for service, original in documents.items():
        document, renames = renamed_for(original, service, merged["components"])
        add_components(merged["components"], document, renames)
        add_paths(merged["paths"], document, service, routed, operation_ids)
        for tag in document.get("tags", []):
            tags.setdefault(tag["name"], tag)
    if tags:
        merged["tags"] = list(tags.values())
    if not merged["components"]:
        del merged["components"]
    return merged


def renamed_for(
    original: Document, service: str, components: Mapping[str, Any]
) -> tuple[Document, dict[str, str]]:
    """`original` with its `$ref`s rewritten so none of its components clashes with a
    different one of the same name in `components`, and the renames (old ref → new ref)."""
    renames: dict[str, str] = {}
    while True:  # a renamed schema changes the schemas that refer to it: to a fixpoint
        document = _rewrite_refs(original, renames)
        found = clashes(document, service, components, renames)
        if not found:
            return document, renames
        renames.update(found)


def clashes(
    document: Document, service: str, components: Mapping[str, Any], renames: Mapping[str, str]
) -> dict[str, str]:
    """The renames for `document`'s components that differ from a merged one of the same
    name (and were not renamed yet)."""
    found: dict[str, str] = {}
    for section, items in document.get("components", {}).items():
        target = components.get(section, {})
        for name, item in items.items():
            ref = f"#/components/{section}/{name}"
            if ref not in renames and ref not in found and name in target and target[name] != item:
                new = _free_name(name, service, {**target, **items})
                found[ref] = f"#/components/{section}/{new}"
    return found


def add_components(
    components: dict[str, Any], document: Document, renames: Mapping[str, str]
) -> None:
    """Merge `document`'s components under their new names; a name already merged keeps
    its first definition (an identical one, after the renames)."""
    for section, items in document.get("components", {}).items():
        target = components.setdefault(section, {})
        for name, item in items.items():
            ref = f"#/components/{section}/{name}"
            target.setdefault(renames[ref].rsplit("/", 1)[-1] if ref in renames else name, item)


def add_paths(
    paths: dict[str, Any],
    document: Document,
    service: str,
    routed: Callable[[str], bool],
    operation_ids: set[str],
) -> None:
    for path, item in document.get("paths", {}).items():
        if not routed(path):
            continue
        existing = paths.setdefault(path, {})
        for method, operation in item.items():
            if method in existing:
                continue  # the owner of a route is one service: the first says
            if isinstance(operation, dict) and "operationId" in operation:
                operation = _unique_operation(operation, service, method, operation_ids)
            existing[method] = operation
