"""Markdown: a readable document, one section per conversation.

Every conversation and message carries an HTML anchor (`<a id="c-...">`, `<a id="m-...">`),
invisible when rendered, so links can point at them and the document can be read back."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

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


async def render_markdown(records: AsyncIterable[AnyRecord], options: RenderOptions
                          ) -> AsyncIterator[bytes]:
    """The Markdown document, streamed."""
    out = Chunks()
    folders: dict[str, str] = {}  # folder names only: small next to the messages
    memories_started = False
    conversations = 0
    async for record in records:
        text = ""
        if isinstance(record, ArchiveHeader):
            text = "# Parley export\n\n"
            if options.include_timestamps:
                text += f"Exported {stamp(record.generated_at)}.\n\n"
        elif isinstance(record, FolderRecord):
            folders[record.id] = record.title
        elif isinstance(record, ConversationRecord):
            conversations += 1
            text = f'<a id="c-{record.id}"></a>\n\n## {one_line(record.title or UNTITLED)}\n\n'
            facts = []
            in_folders = [one_line(folders[f]) for f in
                          (record.folder_ids if record.folder_ids is not None
                           else [record.folder_id] if record.folder_id else []) if f in folders]
            if in_folders:
                facts.append(("Folder: " if len(in_folders) == 1 else "Folders: ")
                             + ", ".join(in_folders))
            if record.tags:
                facts.append("Tags: " + ", ".join(record.tags))
            if options.include_timestamps:
                facts.append(f"Created {stamp(record.created_at)}")
            if options.include_metadata and record.model:
                facts.append(f"Model: {record.model}")
            if facts:
                text += "_" + " · ".join(facts) + "_\n\n"
        elif isinstance(record, MessageRecord):
            heading = message_heading(record, options)
            text = f'<a id="m-{record.id}"></a>\n\n### {heading}\n\n{record.content}\n\n'
        elif isinstance(record, MemoryRecord):
            if not memories_started:
                text = "## Memories\n\n"
                memories_started = True
            text += f'<a id="r-{record.id}"></a>\n\n### {one_line(record.question)}\n\n'
            text += f"{record.answer}\n\n"
        elif isinstance(record, ArchiveEnd) and conversations == 0 and not memories_started:
            text = "_Nothing to export._\n"
        if text and out.add(text.encode()):
            yield out.take()
    yield out.take()
