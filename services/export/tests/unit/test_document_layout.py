"""What the Markdown and PDF writers put down for each record, without rendering a document:
the pure steps of `export.formats.markdown` and `export.formats.pdf`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.archive import (
    ArchiveCounts,
    ArchiveEnd,
    ArchiveHeader,
    ConversationRecord,
    FolderRecord,
    MemoryRecord,
    MessageRecord,
)
from export.formats import ExportTooLarge, RenderOptions
from export.formats.markdown import (
    NOTHING,
    MarkdownDocument,
    conversation_facts,
    conversation_text,
    folder_names,
)
from export.formats.pdf import Line, PdfLayout, message_lines

AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
PLAIN = RenderOptions(include_timestamps=False)


def header(messages: int = 0) -> ArchiveHeader:
    return ArchiveHeader(
        user_id="u",
        generated_at=AT,
        include=["conversations"],
        counts=ArchiveCounts(messages=messages),
    )


def end() -> ArchiveEnd:
    return ArchiveEnd(counts=ArchiveCounts())


def folder(id: str, title: str) -> FolderRecord:
    return FolderRecord(id=id, title=title, version=1, created_at=AT, updated_at=AT)


def chat(**fields: Any) -> ConversationRecord:
    return ConversationRecord(
        **{"id": "c1", "version": 1, "created_at": AT, "updated_at": AT, **fields}
    )


def message(content: str = "hello") -> MessageRecord:
    return MessageRecord(
        id="m1",
        conversation_id="c1",
        role="user",
        content=content,
        version=1,
        created_at=AT,
        updated_at=AT,
    )


def memory(id: str = "r1") -> MemoryRecord:
    return MemoryRecord(
        id=id, question="why?", answer="because", version=1, created_at=AT, updated_at=AT
    )


# --- Markdown ----------------------------------------------------------------------------


def test_folder_names_follow_folder_ids_and_skip_folders_not_exported() -> None:
    folders = {"f1": "Work\nstuff", "f2": "Home"}
    assert folder_names(chat(folder_ids=["f2", "gone", "f1"]), folders) == ["Home", "Work stuff"]


def test_an_older_archive_names_its_single_folder_id() -> None:
    assert folder_names(chat(folder_id="f1"), {"f1": "Work"}) == ["Work"]
    assert folder_names(chat(), {"f1": "Work"}) == []


def test_facts_say_folder_or_folders() -> None:
    assert conversation_facts(chat(), ["A"], PLAIN) == ["Folder: A"]
    assert conversation_facts(chat(), ["A", "B"], PLAIN) == ["Folders: A, B"]


def test_facts_show_tags_date_and_model_only_as_asked() -> None:
    record = chat(tags=["x", "y"], model="gpt")
    assert conversation_facts(record, [], PLAIN) == ["Tags: x, y"]
    assert conversation_facts(record, [], RenderOptions(include_metadata=True)) == [
        "Tags: x, y",
        "Created 2026-03-04 05:06:07 UTC",
        "Model: gpt",
    ]


def test_a_conversation_without_facts_has_no_facts_line() -> None:
    assert (
        conversation_text(chat(title="Hi\nthere"), [], PLAIN)
        == '<a id="c-c1"></a>\n\n## Hi there\n\n'
    )
    assert conversation_text(chat(), ["A"], PLAIN).endswith(
        "## Untitled conversation\n\n_Folder: A_\n\n"
    )


def test_a_folder_record_writes_nothing_but_names_the_chats_in_it() -> None:
    document = MarkdownDocument(PLAIN)
    assert document.text_of(folder("f1", "Work")) == ""
    assert "_Folder: Work_" in document.text_of(chat(folder_ids=["f1"]))


def test_the_memories_heading_comes_once() -> None:
    document = MarkdownDocument(PLAIN)
    first, second = document.text_of(memory("r1")), document.text_of(memory("r2"))
    assert first.startswith("## Memories\n\n")
    assert "Memories" not in second


def test_nothing_to_export_only_when_no_chat_or_memory_was_written() -> None:
    empty = MarkdownDocument(PLAIN)
    empty.text_of(folder("f1", "Work"))
    assert empty.text_of(end()) == NOTHING
    with_chat = MarkdownDocument(PLAIN)
    with_chat.text_of(chat())
    assert with_chat.text_of(end()) == ""
    with_memory = MarkdownDocument(PLAIN)
    with_memory.text_of(memory())
    assert with_memory.text_of(end()) == ""


# --- PDF ---------------------------------------------------------------------------------


def test_a_pdf_over_the_limit_is_refused_at_the_header() -> None:
    PdfLayout(PLAIN, max_messages=3).lines_of(header(messages=3))
    with pytest.raises(ExportTooLarge):
        PdfLayout(PLAIN, max_messages=3).lines_of(header(messages=4))


def test_the_header_shows_the_export_date_when_asked() -> None:
    assert [line.text for line in PdfLayout(RenderOptions(), 10).lines_of(header())] == [
        "Parley export",
        "Exported 2026-03-04 05:06:07 UTC",
    ]
    assert [line.text for line in PdfLayout(PLAIN, 10).lines_of(header())] == ["Parley export"]


def test_an_empty_message_still_takes_its_paragraph() -> None:
    assert message_lines(message(""), PLAIN) == [Line("You", style="B", gap=0.5), Line(" ", gap=3)]


def test_the_pdf_memories_heading_comes_once_with_space_before() -> None:
    layout = PdfLayout(PLAIN, 10)
    first, second = layout.lines_of(memory("r1")), layout.lines_of(memory("r2"))
    assert first[0] == Line("Memories", size=14, style="B", gap=2, space_before=4)
    assert [line.text for line in second] == ["why?", "because"]


def test_a_pdf_says_nothing_to_export_only_when_no_record_came_between() -> None:
    empty = PdfLayout(PLAIN, 10)
    empty.lines_of(header())
    assert empty.lines_of(end()) == [Line("Nothing to export.")]
    with_folder = PdfLayout(PLAIN, 10)
    with_folder.lines_of(folder("f1", "Work"))
    assert with_folder.handled == 1
    assert with_folder.lines_of(end()) == []
