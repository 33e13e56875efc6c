"""Each format's content, written from the chat stream's own records (no HTTP needed)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator, Iterable

import pytest
from pypdf import PdfReader

from contracts.archive import (
    AnyRecord,
    ArchiveCounts,
    ArchiveEnd,
    ArchiveHeader,
    ConversationRecord,
    FolderRecord,
    MessageRecord,
)
from export.formats import Renderer, RenderOptions
from export.formats.bundle import AttachmentFile, SkippedAttachment, render_zip
from export.formats.csv_format import COLUMNS, render_csv, unguard
from export.formats.json_format import read_records, render_json
from export.formats.markdown import render_markdown
from export.formats.pdf import find_font, render_pdf
from parley.sample_archive import BASE, sample_archive


async def _aiter(records: Iterable[AnyRecord]) -> AsyncIterator[AnyRecord]:
    for record in records:
        yield record


async def render(
    renderer: Renderer, records: list[AnyRecord], options: RenderOptions | None = None
) -> bytes:
    return b"".join([c async for c in renderer(_aiter(records), options or RenderOptions())])


def messages(records: list[AnyRecord]) -> list[MessageRecord]:
    return [r for r in records if isinstance(r, MessageRecord)]


def empty_archive() -> list[AnyRecord]:
    return [
        ArchiveHeader(
            user_id="u", generated_at=BASE, include=["conversations"], counts=ArchiveCounts()
        ),
        ArchiveEnd(counts=ArchiveCounts()),
    ]


# JSON
async def test_json_gives_back_exactly_the_records_it_was_written_from() -> None:
    records = list(sample_archive(conversations=4, messages_per_conversation=7, memories=3))
    document = await render(render_json, records)
    assert list(read_records(document)) == records
    back = list(read_records(document))
    conversation = next(r for r in back if isinstance(r, ConversationRecord))
    assert conversation.model_extra == {"future_field": {"kept": True}}  # unknown fields kept
    assert any(m.revisions for m in messages(back))
    assert json.loads(document)["format_version"] == 1


@pytest.mark.parametrize(
    "kinds", [(), ("folders",), ("memories",), ("conversations",), ("folders", "memories")]
)
async def test_json_is_valid_whatever_sections_are_empty(kinds: tuple[str, ...]) -> None:
    records = list(
        sample_archive(
            conversations=2 if "conversations" in kinds else 0,
            messages_per_conversation=2,
            memories=2 if "memories" in kinds else 0,
            folders=1 if "folders" in kinds else 0,
        )
    )
    document = await render(render_json, records)
    data = json.loads(document)
    assert set(data) == {
        "format",
        "format_version",
        "header",
        "folders",
        "conversations",
        "memories",
        "end",
    }
    assert list(read_records(document)) == records


async def test_a_conversation_without_messages_keeps_an_empty_list() -> None:
    records = list(sample_archive(conversations=2, messages_per_conversation=0, memories=0))
    data = json.loads(await render(render_json, records))
    assert [c["messages"] for c in data["conversations"]] == [[], []]


# CSV
def parse_csv(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


async def test_csv_parses_back_to_the_same_messages() -> None:
    records = list(sample_archive(conversations=3, messages_per_conversation=11))
    rows = parse_csv(await render(render_csv, records))
    source = messages(records)
    assert len(rows) == len(source)
    for row, message in zip(rows, source, strict=True):
        assert unguard(row["content"]) == message.content
        assert (row["message_id"], row["conversation_id"], row["role"]) == (
            message.id,
            message.conversation_id,
            message.role,
        )
        assert row["parent_id"] == (message.parent_id or "")
        assert row["timestamp"] == message.created_at.isoformat()
    titles = {r["conversation_id"]: unguard(r["conversation_title"]) for r in rows}
    assert titles["conv-000000"] == 'Conversation 0: =cmd, "plans"'


async def test_csv_cells_cannot_run_as_spreadsheet_formulas() -> None:
    records = list(sample_archive(conversations=1, messages_per_conversation=11))
    rows = parse_csv(await render(render_csv, records))
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert any(r["content"] == '\'=HYPERLINK("http://evil.example", "click")' for r in rows)


async def test_csv_header_and_metadata_column() -> None:
    records = list(sample_archive(conversations=1, messages_per_conversation=2))
    data = await render(render_csv, records, RenderOptions(include_metadata=True))
    assert data.startswith("\ufeff".encode())
    rows = parse_csv(data)
    assert list(rows[0]) == [*COLUMNS, "metadata"]
    assert json.loads(rows[0]["metadata"]) == {"lang": "en"}


async def test_an_empty_csv_is_just_its_header_row() -> None:
    data = await render(render_csv, empty_archive())
    assert parse_csv(data) == []
    assert data.decode("utf-8-sig").strip() == ",".join(COLUMNS)


# Markdown
MESSAGE = re.compile(r'<a id="m-(?P<id>[^"]+)"></a>\n\n### (?P<heading>[^\n]*)\n\n')
BOUNDARY = re.compile(r'\n\n(?=<a id="[mcr]-|## Memories\n)')


def parse_markdown(text: str) -> list[tuple[str, str, str]]:
    """(message id, heading, content) of every message in a Markdown export."""
    found = []
    for match in MESSAGE.finditer(text):
        rest = text[match.end() :]
        cut = BOUNDARY.search(rest)
        content = rest[: cut.start()] if cut else rest.removesuffix("\n\n")
        found.append((match["id"], match["heading"], content))
    return found


async def test_markdown_reads_back_to_the_same_messages_with_authors_and_dates() -> None:
    records = list(sample_archive(conversations=3, messages_per_conversation=10, memories=0))
    text = (await render(render_markdown, records)).decode()
    parsed = parse_markdown(text)
    source = messages(records)
    assert [p[0] for p in parsed] == [m.id for m in source]
    for (_, heading, content), message in zip(parsed, source, strict=True):
        assert content == message.content
        author = "You" if message.role == "user" else "Assistant"
        assert heading == f"{author} · {message.created_at:%Y-%m-%d %H:%M:%S} UTC"
    assert text.count("\n## Conversation ") == 3


async def test_markdown_without_timestamps_has_no_dates() -> None:
    records = list(sample_archive(conversations=1, messages_per_conversation=2, memories=0))
    text = (
        await render(render_markdown, records, RenderOptions(include_timestamps=False))
    ).decode()
    assert "2024-" not in text
    assert [p[1] for p in parse_markdown(text)] == ["You", "Assistant"]


async def test_markdown_names_every_folder_a_chat_sits_in() -> None:
    at = BASE
    records: list[AnyRecord] = [
        ArchiveHeader(
            user_id="u",
            generated_at=at,
            include=["folders", "conversations"],
            counts=ArchiveCounts(folders=2, conversations=3),
        ),
        FolderRecord(id="f1", title="Work", version=1, created_at=at, updated_at=at),
        FolderRecord(id="f2", title="Ideas", version=1, created_at=at, updated_at=at),
        ConversationRecord(
            id="both",
            title="Both",
            folder_id="f1",
            folder_ids=["f1", "f2"],
            version=1,
            created_at=at,
            updated_at=at,
        ),
        ConversationRecord(
            id="old", title="Old", folder_id="f2", version=1, created_at=at, updated_at=at
        ),  # an archive from before folder_ids
        ConversationRecord(
            id="none", title="None", folder_ids=[], version=1, created_at=at, updated_at=at
        ),
        ArchiveEnd(counts=ArchiveCounts(folders=2, conversations=3)),
    ]
    text = (
        await render(render_markdown, records, RenderOptions(include_timestamps=False))
    ).decode()
    assert "## Both\n\n_Folders: Work, Ideas_" in text
    assert "## Old\n\n_Folder: Ideas_" in text
    assert "## None\n\n<a" in text or text.rstrip().endswith("## None")


async def test_an_empty_markdown_export_says_so() -> None:
    text = (await render(render_markdown, empty_archive())).decode()
    assert text.startswith("# Parley export")
    assert "Nothing to export" in text


# PDF
def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def drawable(text: str) -> str:
    """The text less the characters the font has no glyph for (CJK and emoji are not in
    DejaVu Sans: a font that has them is a setting, EXPORT_PDF_FONT_PATH)."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(find_font())).getBestCmap()
    return "".join(ch for ch in text if ord(ch) in cmap and not rtl(ch))


def rtl(ch: str) -> bool:
    """Right-to-left letters come out of the PDF in visual order: compared separately."""
    import unicodedata

    return unicodedata.bidirectional(ch) in ("R", "AL")


async def test_the_pdf_holds_every_message_in_unicode_over_several_pages() -> None:
    records = list(sample_archive(conversations=3, messages_per_conversation=11, memories=1))
    data = await render(lambda r, o: render_pdf(r, o, font=find_font()), records)
    assert data.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) > 3  # long messages wrap and break pages
    extracted = pdf_text(data)
    text = squeeze("".join(ch for ch in extracted if not rtl(ch)))
    for message in messages(records):
        assert squeeze(drawable(message.content)) in text, message.content[:40]
    assert squeeze("Grüße, Ελληνικά, русский") in text
    assert "עברית" in extracted or "עברית"[::-1] in extracted


async def test_an_empty_pdf_is_a_valid_document() -> None:
    data = await render(lambda r, o: render_pdf(r, o, font=find_font()), empty_archive())
    assert "Nothing to export" in pdf_text(data)


# Zip
async def test_the_zip_holds_every_format_and_a_manifest_with_their_checksums() -> None:
    records = list(sample_archive(conversations=2, messages_per_conversation=5))
    entries: list[tuple[str, Renderer]] = [
        ("export.json", render_json),
        ("export.md", render_markdown),
        ("export.csv", render_csv),
        ("export.pdf", lambda r, o: render_pdf(r, o, font=find_font(), max_messages=5)),
    ]
    data = await render(lambda r, o: render_zip(r, o, entries=entries), records)
    bundle = zipfile.ZipFile(io.BytesIO(data))
    assert bundle.testzip() is None
    manifest = json.loads(bundle.read("manifest.json"))
    names = [e["name"] for e in manifest["entries"]]
    assert names == ["export.json", "export.md", "export.csv"]
    for entry in manifest["entries"]:
        content = bundle.read(entry["name"])
        assert entry["size"] == len(content)
        assert entry["sha256"] == hashlib.sha256(content).hexdigest()
    assert list(read_records(bundle.read("export.json"))) == records
    # the PDF refused (10 messages > 5) before writing anything: skipped, not half-written
    assert "export.pdf" not in bundle.namelist()
    assert manifest["skipped"][0]["name"] == "export.pdf"


async def _pieces(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def test_the_zip_holds_each_messages_attachments_and_lists_the_skipped_ones() -> None:
    records = list(sample_archive(conversations=1, messages_per_conversation=2))
    first, second = messages(records)
    picture = [b"\x89PNG\r\n\x1a\n", bytes(range(256)) * 1200]  # over a flush chunk
    closed: list[str] = []

    async def attachments(
        message: MessageRecord,
    ) -> AsyncGenerator[AttachmentFile | SkippedAttachment, None]:
        try:
            if message.id == first.id:
                yield "a1-photo.png", _pieces(picture)
                yield SkippedAttachment("a2", "the attachment was deleted")
        finally:
            closed.append(message.id)

    def bundle_of(options: RenderOptions, with_source: bool = True) -> Renderer:
        return lambda r, o: render_zip(
            r,
            options,
            entries=[("export.json", render_json)],
            attachments=attachments if with_source else None,
        )

    data = await render(bundle_of(RenderOptions(include_attachments=True)), records)
    bundle = zipfile.ZipFile(io.BytesIO(data))
    assert bundle.testzip() is None
    path = f"attachments/{first.conversation_id}/{first.id}/a1-photo.png"
    assert bundle.read(path) == b"".join(picture)
    manifest = json.loads(bundle.read("manifest.json"))
    assert manifest["entries"][1:] == [
        {
            "name": path,
            "size": len(b"".join(picture)),
            "sha256": hashlib.sha256(b"".join(picture)).hexdigest(),
        }
    ]
    assert manifest["skipped"] == [
        {
            "name": f"attachments/{first.conversation_id}/{first.id}/a2",
            "reason": "the attachment was deleted",
        }
    ]
    assert closed == [first.id, second.id]  # every message asked, every generator closed

    # not asked for: no attachments and nothing skipped
    plain = zipfile.ZipFile(io.BytesIO(await render(bundle_of(RenderOptions()), records)))
    assert not [n for n in plain.namelist() if n.startswith("attachments/")]
    assert json.loads(plain.read("manifest.json"))["skipped"] == []
    # asked for where no source is configured: the manifest says so
    alone = zipfile.ZipFile(
        io.BytesIO(
            await render(
                bundle_of(RenderOptions(include_attachments=True), with_source=False), records
            )
        )
    )
    assert json.loads(alone.read("manifest.json"))["skipped"] == [
        {"name": "attachments/", "reason": "no attachment source is configured"}
    ]
