"""PDF: a readable document made with fpdf2 — a Unicode TrueType font (DejaVu Sans by
default), wrapped lines, automatic page breaks, one section per conversation.

fpdf2 assembles the whole document before writing it, so a PDF's memory grows with its
size: exports over `max_messages` messages fail with ExportTooLarge (the header's counts
say so before any work) and the user is pointed at another format."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
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
    for path in ([Path(configured)] if configured else list(FONT_CANDIDATES)):
        if path.is_file():
            return path
    raise FontMissing("no Unicode TTF font for PDF exports: install fonts-dejavu-core or "
                      "set EXPORT_PDF_FONT_PATH")


def _bold_of(font: Path) -> Path | None:
    bold = font.with_name(font.stem + "-Bold" + font.suffix)
    return bold if bold.is_file() else None


async def render_pdf(records: AsyncIterable[AnyRecord], options: RenderOptions, *,
                     font: Path, max_messages: int = 50_000) -> AsyncIterator[bytes]:
    """The PDF document (assembled in memory, then streamed out)."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("body", "", str(font))
    bold = _bold_of(font)
    pdf.add_font("body", "B", str(bold or font))
    pdf.set_title("Parley export")
    pdf.add_page()

    def write(text: str, size: float = 10, style: str = "", gap: float = 1.5) -> None:
        pdf.set_font("body", style, size)
        pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(gap)

    handled = 0
    memories_started = False
    async for record in records:
        if isinstance(record, ArchiveHeader):
            if record.counts.messages > max_messages:
                raise ExportTooLarge(
                    f"{record.counts.messages} messages are more than a PDF export holds "
                    f"({max_messages}): choose json, markdown, csv or zip")
            write("Parley export", size=18, style="B", gap=2)
            if options.include_timestamps:
                write(f"Exported {stamp(record.generated_at)}", size=9, gap=4)
        elif isinstance(record, ConversationRecord):
            pdf.ln(4)
            write(one_line(record.title or UNTITLED), size=14, style="B", gap=1)
            if options.include_timestamps:
                write(f"Created {stamp(record.created_at)}", size=8, gap=2)
        elif isinstance(record, MessageRecord):
            heading = message_heading(record, options)
            write(heading, size=10, style="B", gap=0.5)
            write(record.content or " ", size=10, gap=3)
        elif isinstance(record, MemoryRecord):
            if not memories_started:
                pdf.ln(4)
                write("Memories", size=14, style="B", gap=2)
                memories_started = True
            write(one_line(record.question), size=10, style="B", gap=0.5)
            write(record.answer or " ", size=10, gap=3)
        elif isinstance(record, ArchiveEnd) and handled == 0:
            write("Nothing to export.", size=10)
        if not isinstance(record, ArchiveHeader | ArchiveEnd):
            handled += 1
            if handled % 200 == 0:
                await asyncio.sleep(0)  # layout is CPU work: let heartbeats through
    document = bytes(await asyncio.to_thread(pdf.output))
    for start in range(0, len(document), FLUSH_AT):
        yield document[start:start + FLUSH_AT]
    if not document:
        yield b""
