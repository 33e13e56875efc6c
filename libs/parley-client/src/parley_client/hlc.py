"""The client's hybrid logical clock: `<unix_ms>-<counter>`, never going backwards on one
client, even when the wall clock does (the counter carries it forward)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HLC = re.compile(r"^(\d{1,15})-(\d{1,5})$")
MAX_COUNTER = 99_999  # the server's stamp keeps five digits of counter


@dataclass(frozen=True, order=True)
class Hlc:
    """One reading of the clock; readings compare by (ms, counter)."""

    ms: int
    counter: int = 0

    def __str__(self) -> str:
        return f"{self.ms}-{self.counter}"

    @classmethod
    def parse(cls, text: str) -> Hlc:
        """`"1733400000000-3"` → Hlc(1733400000000, 3); ValueError for anything else."""
        match = _HLC.match(text)
        if match is None:
            raise ValueError(f"not a hybrid logical clock: {text!r}")
        return cls(int(match[1]), int(match[2]))


def tick(previous: Hlc | None, wall_ms: int) -> Hlc:
    """The reading after `previous` at wall time `wall_ms`: the wall time when it moved
    ahead, else the previous time with the counter one higher (past the counter's last
    value, the next millisecond)."""
    if previous is None or wall_ms > previous.ms:
        return Hlc(wall_ms, 0)
    if previous.counter < MAX_COUNTER:
        return Hlc(previous.ms, previous.counter + 1)
    return Hlc(previous.ms + 1, 0)
