"""Parley's own export read back: the same records, ids and fields (unknown ones too)."""

from __future__ import annotations

import json
from collections import Counter

from contracts.archive import ArchiveEnd, ArchiveHeader, dump_line
from parley.sample_archive import sample_archive

from .import_support import read


def archive() -> list:
    return list(sample_archive(conversations=4, messages_per_conversation=7, memories=3, folders=2))


def export_document(records: list) -> bytes:
    """The JSON export's shape (docs/export-format.md), written from archive records."""
    document: dict = {"format": "parley-export", "format_version": 1, "folders": [],
                      "conversations": [], "memories": []}  # fmt: skip
    for record in records:
        data = record.model_dump(mode="json")
        if isinstance(record, ArchiveHeader):
            document["header"] = data
        elif isinstance(record, ArchiveEnd):
            document["end"] = data
        elif record.type == "folder":
            document["folders"].append(data)
        elif record.type == "conversation":
            document["conversations"].append({"conversation": data, "messages": []})
        elif record.type == "message":
            document["conversations"][-1]["messages"].append(data)
        else:
            document["memories"].append(data)
    return json.dumps(document, ensure_ascii=False).encode()


def without_provenance(records: list) -> list[dict]:
    dumped = [r.model_dump(mode="json") for r in records]
    for data in dumped:
        assert data.pop("provenance")["source"] == "parley"
    return dumped


def data_records(records: list) -> list[dict]:
    return [r.model_dump(mode="json") for r in records if r.type not in ("header", "end")]


def test_the_json_export_reads_back_as_the_same_records():
    source = archive()
    records, report = read(("export.json", export_document(source)))
    assert without_provenance(records) == data_records(source)
    assert report.issues == []
    assert report.files[0].source == "parley"
    header = source[0]
    assert report.counts == {
        "conversation": header.counts.conversations,
        "folder": header.counts.folders,
        "memory": header.counts.memories,
        "message": header.counts.messages,
    }


def test_the_ndjson_archive_reads_back_as_the_same_records():
    source = archive()
    records, report = read(("archive.ndjson", b"".join(dump_line(r) for r in source)))
    assert without_provenance(records) == data_records(source)
    assert report.issues == []


def test_an_archive_without_its_end_line_is_reported_cut_short():
    source = archive()
    cut = b"".join(dump_line(r) for r in source[:-4])
    records, report = read(("archive.ndjson", cut))
    assert without_provenance(records) == data_records(source[:-4])
    assert report.issue_codes() == Counter({"TRUNCATED": 1})


def test_counts_that_disagree_with_the_header_are_reported():
    source = archive()
    source[-1] = ArchiveEnd(counts=source[-1].counts.model_copy(update={"messages": 99}))
    _, report = read(("export.json", export_document(source)))
    (issue,) = report.issues
    assert issue.code == "COUNT_MISMATCH"
    assert "the end counts 99 messages, the file holds 28" in issue.message
