"""The items of a top-level JSON array, one at a time: a multi-GB `conversations.json` reads
in the memory of its largest entry (and at most one read ahead).

ijson builds every value through its event machinery; for files that are one big array of
self-contained entries (ChatGPT, Open WebUI) slicing the text and decoding each entry whole
is several times faster. The buffer holds the current entry and at most one read ahead (it
grows by doubling while an entry is longer than what was read).

Two decoders, one meaning. Whole entries are decoded by pydantic-core's `from_json` (jiter,
in Rust; about a quarter faster than the standard library on these files, and keys and
short strings are interned), some 8 KB at a time: the slice from the current entry to the
`,` before the first entry at least that far on that opens like the current one
(`{"title":`) is wrapped in `[...]` and decoded; if that parses, the slice is exactly a
sequence of whole entries (the decoder starts at an entry's first byte in both texts and
closes the array right after the slice).
Everything else goes through the standard library's `raw_decode`, one entry at a time, as
before: a slice jiter refuses (bad JSON, a cut, a lone surrogate `\ud800`, nesting deeper
than 200) is read that way, so errors, their messages and what was yielded before them are
the standard library's. jiter accepts a subset of what `json` accepts and decodes it to the
same values (NaN/Infinity, big integers, floats correctly rounded, `1e400` as inf, the last
of duplicate keys in the first one's place): `tests/unit/test_jsonarray.py` compares both.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import pydantic_core

from sync.imports.errors import TruncatedInput

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"
# about this much text per `from_json` call (a ChatGPT conversation is usually more: one
# per call): a whole 4 MB read at once was slower than one entry at a time, its objects no
# longer fit in the caches and, alive together, set off the cyclic collector (a young
# generation collects at 700 containers)
_SLICE = 1 << 13


class _Buffer:
    def __init__(self, stream: BinaryIO, chunk: int) -> None:
        self.stream = stream
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.pos = 0
        self.base = 0  # characters dropped before `text`
        self.eof = False

    def more(self) -> bool:
        """Read on (at least as much again as the unread part holds); False at the end."""
        if self.eof:
            return False
        unread = len(self.text) - self.pos
        data = self.stream.read(max(self.chunk, unread))
        self.eof = not data
        self.base += self.pos
        self.text = self.text[self.pos :] + self.decoder.decode(data, final=self.eof)
        self.pos = 0
        return True

    def next_char(self) -> str:
        """The next character that is not whitespace ('' at the end), not consumed."""
        while True:
            text, pos, end = self.text, self.pos, len(self.text)
            while pos < end and text[pos] in _WHITESPACE:
                pos += 1
            self.pos = pos
            if pos < end:
                return text[pos]
            if not self.more():
                return ""


def array_items(stream: BinaryIO, *, chunk: int = 1 << 22) -> Iterator[Any]:
    """Every item of the array the stream holds; TruncatedInput if it ends early, ValueError
    if it is not a JSON array."""
    buffer = _Buffer(stream, chunk)
    if buffer.next_char() != "[":
        raise ValueError("the file is not a JSON array")
    buffer.pos += 1
    expect_item = True
    slow_until = -1  # absolute offset up to which a refused slice is read one entry at a time
    while True:
        char = buffer.next_char()
        if char == "":
            raise TruncatedInput("the array ends before its closing ]")
        if char == "]":
            return
        if not expect_item:
            if char != ",":
                raise ValueError(f"expected , between entries, found {char!r}")
            buffer.pos += 1
            buffer.next_char()
        if buffer.base + buffer.pos > slow_until:
            items, end = _whole_entries(buffer.text, buffer.pos)
            if items is not None:
                buffer.pos = end
                expect_item = False
                yield from items
                continue
            if end > 0:
                slow_until = buffer.base + end
        while True:
            try:
                item, end = _DECODER.raw_decode(buffer.text, buffer.pos)
            except json.JSONDecodeError as error:
                if _cut_short(error, buffer.text) and buffer.more():
                    continue
                if _cut_short(error, buffer.text):
                    raise TruncatedInput(f"the file ends inside an entry ({error.msg})") from None
                raise
            if end == len(buffer.text) and not buffer.eof and not isinstance(item, dict | list):
                buffer.more()  # a number at the end of what was read may go on
                continue
            break
        buffer.pos = end
        expect_item = False
        yield item


def _whole_entries(text: str, start: int) -> tuple[list[Any] | None, int]:
    """The whole entries from `start` (an entry's first character) up to the last later
    entry that opens like it, decoded in one call, and the offset after them; None when
    there is no such run, with the offset jiter refused (0 when nothing was tried)."""
    if text[start] != "{":
        return None, 0
    colon = text.find(":", start, start + 80)
    if colon < 0:
        return None, 0
    head = text[start : colon + 1]
    cut = text.find(head, start + _SLICE)
    if cut < 0:
        cut = text.rfind(head, start + 1)
    if cut < 0:
        return None, 0
    end = cut - 1
    while text[end] in _WHITESPACE:
        end -= 1
    if text[end] != ",":
        return None, 0
    end -= 1
    while text[end] in _WHITESPACE:
        end -= 1
    end += 1
    try:
        items = pydantic_core.from_json("[" + text[start:end] + "]")
    except ValueError:
        return None, end
    return items, end


def _cut_short(error: json.JSONDecodeError, text: str) -> bool:
    """Whether the decoder failed because the text ran out (rather than on bad JSON): at its
    end, or on a literal (`nu` of `null`) or string the end cut through."""
    return error.msg.startswith("Unterminated string") or error.pos >= len(text.rstrip()) - 8
