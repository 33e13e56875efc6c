"""Markdown: a readable document, one section per conversation.

Every conversation and message carries an HTML anchor (`<a id="c-...">`, `<a id="m-...">`),
invisible when rendered, so links can point at them and the document can be read back."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence

from contracts.archive import (
    AnyRecord,
    ArchiveEnd,
    ArchiveHeader,
    ConversationRecord,
    FolderRecord,
    MemoryRecord,
    MessageRecord,
)
from export.formats import Chunks, RenderOptions, message_heading, stamp

UNTITLED = "Untitled conversation"


def one_line(text: str) -> str:
    """Text fit for a heading: no line breaks."""
    return " ".join(text.split())


async def render_markdown(
    records: AsyncIterable[AnyRecord], options: RenderOptions
) -> AsyncIterator[bytes]:
    """The Markdown document, streamed."""
    out = Chunks()
    document = MarkdownDocument(options)
    async for record in records:
        text = document.text_of(record)
        if text and out.add(text.encode()):
            yield out.take()
    yield out.take()


class MarkdownDocument:
    """What each record adds to the document, in archive order. It remembers only folder
    names (small next to the messages) and whether anything was written."""

    def __init__(self, options: RenderOptions) -> None:
        self.options = options
        self.folders: dict[str, str] = {}
        self.conversations = 0
        self.memories_started = False

    def text_of(self, record: AnyRecord) -> str:
        if isinstance(record, ArchiveHeader):
            return header_text(record, self.options)
        if isinstance(record, FolderRecord):
            self.folders[record.id] = record.title
            return ""
        if isinstance(record, ConversationRecord):
            self.conversations += 1
            return conversation_text(record, folder_names(record, self.folders), self.options)
        if isinstance(record, MessageRecord):
            return message_text(record, self.options)
        if isinstance(record, MemoryRecord):
            first, self.memories_started = not self.memories_started, True
            return (MEMORIES if first else "") + memory_text(record)
        if isinstance(record, ArchiveEnd) and self.conversations == 0 and not self.memories_started:
            return NOTHING
        return ""


MEMORIES = "## Memories\n\n"
NOTHING = "_Nothing to export._\n"


def header_text(record: ArchiveHeader, options: RenderOptions) -> str:
    text = "# Parley export\n\n"
    if options.include_timestamps:
        text += f"Exported {stamp(record.generated_at)}.\n\n"
    return text


def folder_names(record: ConversationRecord, folders: Mapping[str, str]) -> list[str]:
    """The names of the conversation's folders that are in the export (`folder_ids`, or the
    single `folder_id` of an older archive), on one line each."""
    ids = (
        record.folder_ids
        if record.folder_ids is not None
        else [record.folder_id]
        if record.folder_id
        else []
    )
    return [one_line(folders[f]) for f in ids if f in folders]


def conversation_facts(
    record: ConversationRecord, in_folders: Sequence[str], options: RenderOptions
) -> list[str]:
    facts = []
    if in_folders:
        facts.append(("Folder: " if len(in_folders) == 1 else "Folders: ") + ", ".join(in_folders))
    if record.tags:
        facts.append("Tags: " + ", ".join(record.tags))
    if options.include_timestamps:
        facts.append(f"Created {stamp(record.created_at)}")
    if options.include_metadata and record.model:
        facts.append(f"Model: {record.model}")
    return facts


def conversation_text(
    record: ConversationRecord, in_folders: Sequence[str], options: RenderOptions
) -> str:
    text = f'<a id="c-{record.id}"></a>\n\n## {one_line(record.title or UNTITLED)}\n\n'
    facts = conversation_facts(record, in_folders, options)
    return text + ("_" + " · ".join(facts) + "_\n\n" if facts else "")


def message_text(record: MessageRecord, options: RenderOptions) -> str:
    heading = message_heading(record, options)
    return f'<a id="m-{record.id}"></a>\n\n### {heading}\n\n{record.content}\n\n'


def memory_text(record: MemoryRecord) -> str:
    return f'<a id="r-{record.id}"></a>\n\n### {one_line(record.question)}\n\n{record.answer}\n\n'
