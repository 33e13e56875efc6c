"""PDF: a readable document made with fpdf2 — a Unicode TrueType font (DejaVu Sans by
default), wrapped lines, automatic page breaks, one section per conversation.

fpdf2 assembles the whole document before writing it, so a PDF's memory grows with its
size: exports over `max_messages` messages fail with ExportTooLarge (the header's counts
say so before any work) and the user is pointed at another format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF

from contracts.archive import (
    AnyRecord,
    ArchiveEnd,
    ArchiveHeader,
    ConversationRecord,
    MemoryRecord,
    MessageRecord,
)
from export.formats import FLUSH_AT, ExportTooLarge, RenderOptions, message_heading, stamp
from export.formats.markdown import UNTITLED, one_line

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),  # Debian's fonts-dejavu-core
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)


class FontMissing(RuntimeError):
    """No Unicode TrueType font to write a PDF with."""


def find_font(configured: str = "") -> Path:
    """The TTF to use: the configured one, else the first DejaVu Sans found."""
    for path in [Path(configured)] if configured else list(FONT_CANDIDATES):
        if path.is_file():
            return path
    raise FontMissing(
        "no Unicode TTF font for PDF exports: install fonts-dejavu-core or set EXPORT_PDF_FONT_PATH"
    )


def _bold_of(font: Path) -> Path | None:
    bold = font.with_name(font.stem + "-Bold" + font.suffix)
    return bold if bold.is_file() else None


async def render_pdf(
    records: AsyncIterable[AnyRecord],
    options: RenderOptions,
    *,
    font: Path,
    max_messages: int = 50_000,
) -> AsyncIterator[bytes]:
    """The PDF document (assembled in memory, then streamed out)."""
    pdf = new_pdf(font)
    layout = PdfLayout(options, max_messages)
    async for record in records:
        for line in layout.lines_of(record):
            write(pdf, line)
        if counts(record) and layout.handled % PAUSE_EVERY == 0:
            await asyncio.sleep(0)  # layout is CPU work: let heartbeats through
    document = bytes(await asyncio.to_thread(pdf.output))
    for start in range(0, len(document), FLUSH_AT):
        yield document[start : start + FLUSH_AT]
    if not document:
        yield b""


PAUSE_EVERY = 200  # records laid out between two yields to the event loop


@dataclass(frozen=True)
class Line:
    """A paragraph of the PDF: its text and how it is set."""

    text: str
    size: float = 10
    style: str = ""  # "" or "B"
    gap: float = 1.5  # space after, in mm
    space_before: float = 0


def counts(record: AnyRecord) -> bool:
    """Whether a record is content (anything between the header and the end)."""
    return not isinstance(record, ArchiveHeader | ArchiveEnd)


class PdfLayout:
    """The lines each record adds, in archive order: pure, so fpdf2 only sets them."""

    def __init__(self, options: RenderOptions, max_messages: int) -> None:
        self.options = options
        self.max_messages = max_messages
        self.handled = 0  # content records so far
        self.memories_started = False

    def lines_of(self, record: AnyRecord) -> list[Line]:
        lines = self._lines(record)
        if counts(record):
            self.handled += 1
        return lines

    def _lines(self, record: AnyRecord) -> list[Line]:
        if isinstance(record, ArchiveHeader):
            refuse_too_large(record, self.max_messages)
            return header_lines(record, self.options)
        if isinstance(record, ConversationRecord):
            return conversation_lines(record, self.options)
        if isinstance(record, MessageRecord):
            return message_lines(record, self.options)
        if isinstance(record, MemoryRecord):
            first, self.memories_started = not self.memories_started, True
            return [*(MEMORIES if first else []), *memory_lines(record)]
        if isinstance(record, ArchiveEnd) and self.handled == 0:
            return [Line("Nothing to export.")]
        return []


MEMORIES = [Line("Memories", size=14, style="B", gap=2, space_before=4)]


def refuse_too_large(header: ArchiveHeader, max_messages: int) -> None:
    """Known from the header's counts, before any work."""
    if header.counts.messages > max_messages:
        raise ExportTooLarge(
            f"{header.counts.messages} messages are more than a PDF export holds "
            f"({max_messages}): choose json, markdown, csv or zip"
        )


def header_lines(record: ArchiveHeader, options: RenderOptions) -> list[Line]:
    lines = [Line("Parley export", size=18, style="B", gap=2)]
    if options.include_timestamps:
        lines.append(Line(f"Exported {stamp(record.generated_at)}", size=9, gap=4))
    return lines


def conversation_lines(record: ConversationRecord, options: RenderOptions) -> list[Line]:
    lines = [Line(one_line(record.title or UNTITLED), size=14, style="B", gap=1, space_before=4)]
    if options.include_timestamps:
        lines.append(Line(f"Created {stamp(record.created_at)}", size=8, gap=2))
    return lines


def message_lines(record: MessageRecord, options: RenderOptions) -> list[Line]:
    # an empty paragraph would not advance the page: a space keeps the gap
    return [
        Line(message_heading(record, options), style="B", gap=0.5),
        Line(record.content or " ", gap=3),
    ]


def memory_lines(record: MemoryRecord) -> list[Line]:
    return [Line(one_line(record.question), style="B", gap=0.5), Line(record.answer or " ", gap=3)]


def new_pdf(font: Path) -> FPDF:
    """An A4 document with `font` as its body font (bold from `<name>-Bold`, if present)."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("body", "", str(font))
    pdf.add_font("body", "B", str(_bold_of(font) or font))
    pdf.set_title("Parley export")
    pdf.add_page()
    return pdf


def write(pdf: FPDF, line: Line) -> None:
    if line.space_before:
        pdf.ln(line.space_before)
    pdf.set_font("body", line.style, line.size)
    pdf.multi_cell(0, line.size * 0.5, line.text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(line.gap)
