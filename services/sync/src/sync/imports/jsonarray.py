"""The items of a top-level JSON array, one at a time, decoded by the standard library's C
decoder: a multi-GB `conversations.json` reads in the memory of its largest entry.

ijson builds every value through its event machinery; for files that are one big array of
self-contained entries (ChatGPT, Open WebUI) slicing the text and letting `json` decode each
entry whole is several times faster. The buffer holds the current entry and at most one
read ahead (it grows by doubling while an entry is longer than what was read).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from sync.imports.errors import TruncatedInput

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class _Buffer:
    def __init__(self, stream: BinaryIO, chunk: int) -> None:
        self.stream = stream
        self.chunk = chunk
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Read on (at least as much again as the unread part holds); False at the end."""
        if self.eof:
            return False
        unread = len(self.text) - self.pos
        data = self.stream.read(max(self.chunk, unread))
        self.eof = not data
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


def _cut_short(error: json.JSONDecodeError, text: str) -> bool:
    """Whether the decoder failed because the text ran out (rather than on bad JSON): at its
    end, or on a literal (`nu` of `null`) or string the end cut through."""
    return error.msg.startswith("Unterminated string") or error.pos >= len(text.rstrip()) - 8
