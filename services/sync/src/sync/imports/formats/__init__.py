"""One reader per source app: `read(open_stream, ctx)` yields archive records in archive order.

`open_stream()` gives the file's bytes from the start (UTF-8 guaranteed); a reader may call
it more than once (big-AGI reads its folders before its conversations).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from contracts.archive import ArchiveRecord
from sync.imports.conversation import ReadContext
from sync.imports.jsonarray import array_items

EntryReader = Callable[[dict[str, Any], int, ReadContext], Iterator[ArchiveRecord]]


def each_entry(
    open_stream: Callable[[], BinaryIO], ctx: ReadContext, read_entry: EntryReader
) -> Iterator[ArchiveRecord]:
    """A file that is one array of chats (ChatGPT, Open WebUI): each entry in turn."""
    with open_stream() as stream:
        for index, item in enumerate(array_items(stream)):
            if isinstance(item, dict):
                yield from read_entry(item, index, ctx)
            else:
                ctx.issue("NOT_A_CONVERSATION", f"entry {index} is not an object; skipped")
