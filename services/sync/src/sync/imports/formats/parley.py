"""Parley's own export, read back exactly: the JSON document or the NDJSON archive.

Every record keeps its id, tree, revisions, folders and every field it carries (unknown
ones included); only `provenance` is added (a provenance the record already had, from an
earlier import, moves to `prior_provenance`). The header's counts are checked against what
the file holds and a file without its `end` record is reported as cut short. The JSON
document is read in a pass per section (folders, conversations, memories, end), each
streamed, so a large export reads in the memory of its largest conversation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import ijson

from contracts.archive import RECORD, ArchiveRecord
from sync.imports.conversation import ReadContext

_KINDS = ("folders", "conversations", "messages", "memories")


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    with open_stream() as stream:
        first = stream.read(64).lstrip()
    counts = dict.fromkeys(_KINDS, 0)
    if first.startswith(b'{"type"') or b'"header"' in first:
        yield from _ndjson(open_stream, ctx, counts)
    else:
        yield from _document(open_stream, ctx, counts)


def _record(data: dict[str, Any], ctx: ReadContext, counts: dict[str, int]) -> ArchiveRecord:
    if "provenance" in data:
        data = {**data, "prior_provenance": data["provenance"]}
    record = RECORD.validate_python({**data, "provenance": ctx.provenance(data.get("id"))})
    counts[f"{record.type}s" if record.type != "memory" else "memories"] += 1
    return record


def _document(
    open_stream: Callable[[], BinaryIO], ctx: ReadContext, counts: dict[str, int]
) -> Iterator[ArchiveRecord]:
    with open_stream() as stream:
        header = next(ijson.items(stream, "header", use_float=True), None)
    with open_stream() as stream:
        for folder in ijson.items(stream, "folders.item", use_float=True):
            yield _record(folder, ctx, counts)
    with open_stream() as stream:
        for entry in ijson.items(stream, "conversations.item", use_float=True):
            yield _record(entry["conversation"], ctx, counts)
            for message in entry.get("messages") or []:
                yield _record(message, ctx, counts)
    with open_stream() as stream:
        for memory in ijson.items(stream, "memories.item", use_float=True):
            yield _record(memory, ctx, counts)
    with open_stream() as stream:
        end = next(ijson.items(stream, "end", use_float=True), None)
    _check(header, end, counts, ctx)


def _ndjson(
    open_stream: Callable[[], BinaryIO], ctx: ReadContext, counts: dict[str, int]
) -> Iterator[ArchiveRecord]:
    header = end = None
    with open_stream() as stream:
        for line in _lines(stream):
            if not line.strip():
                continue
            data = _object(line)
            kind = data.get("type")
            if kind == "header":
                header = data
            elif kind == "end":
                end = data
            else:
                yield _record(data, ctx, counts)
    _check(header, end, counts, ctx)


def _object(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("an archive line is not a JSON object")
    return value


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    tail = b""
    while chunk := stream.read(1 << 16):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield from lines
    if tail:
        yield tail


def _check(
    header: dict[str, Any] | None,
    end: dict[str, Any] | None,
    counts: dict[str, int],
    ctx: ReadContext,
) -> None:
    if end is None:
        ctx.issue(
            "TRUNCATED",
            "the export has no end record: it was cut short; what it held was read",
            severity="error",
        )
    for name, declared in (("header", header), ("end", end)):
        declared_counts = (declared or {}).get("counts") or {}
        for kind in _KINDS:
            if kind in declared_counts and int(declared_counts[kind]) != counts[kind]:
                if name == "header" and end is None:
                    continue
                ctx.issue(
                    "COUNT_MISMATCH",
                    f"the {name} counts {declared_counts[kind]} {kind}, the file holds "
                    f"{counts[kind]}",
                    severity="error",
                )
