"""`array_items` decodes runs of whole entries with pydantic-core's `from_json` and the rest
with the standard library: both paths must give the same items, the same errors and the
same items before an error. Each case is read twice, the second time with the fast path
switched off (everything through `json`), and the outcomes compared."""

from __future__ import annotations

import io
import json
import math

import pytest

from sync.imports import jsonarray
from sync.imports.errors import TruncatedInput
from sync.imports.jsonarray import array_items

# values where decoders are known to differ, each inside an otherwise ordinary entry
ODD_VALUES = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e20",
    "123456789012345678901234567890123456789",
    "-0",
    "-0.0",
    "0.30000000000000004",
    "5e-324",
    "1.7976931348623157e308",
    '"\\ud83d\\ude00"',
    '"\\ud800"',  # a lone surrogate: json keeps it, jiter refuses the slice
    '"\\udc00 then text"',
    '"\\u0000"',
    '{"k": 1, "j": 2, "k": 3}',  # duplicate keys: the last value in the first one's place
    "[" * 250 + "]" * 250,  # deeper than jiter's limit of 200
    '"caf\u00e9 \u2028 \\/"',
]


def _entries(value: str, count: int = 40) -> str:
    padding = "x" * 3000  # entries of ~3 KB: several to a slice, several slices
    entries = [
        f'{{"title": "t{i}", "pad": "{padding}", "v": {value if i == count // 2 else i}}}'
        for i in range(count)
    ]
    return "[" + ",\n ".join(entries) + "]"


def _read(text: str, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list, str | None]:
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(jsonarray, "_whole_entries", lambda text, start: (None, 0))
        items: list = []
        try:
            for item in array_items(io.BytesIO(text.encode("utf-8", "surrogatepass")), chunk=8192):
                items.append(item)
        except (ValueError, TruncatedInput) as error:
            return items, f"{type(error).__name__}: {error}"
        return items, None


def _same(a: object, b: object) -> bool:
    """Equal, with NaN equal to NaN and the types (int vs float, key order) compared too."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize("value", ODD_VALUES)
def test_odd_values_decode_as_the_standard_library_decodes_them(value, monkeypatch):
    text = _entries(value)
    fast, fast_error = _read(text, fast=True, monkeypatch=monkeypatch)
    slow, slow_error = _read(text, fast=False, monkeypatch=monkeypatch)
    assert fast_error is None
    assert slow_error is None
    assert _same(fast, slow)
    assert _same(fast, json.loads(text))


BROKEN = [
    _entries("1")[:-20_000],  # cut short in the middle of an entry
    _entries("1")[:-1],  # no closing ]
    _entries("tru"),  # a bad literal in the middle
    _entries('"a\tb"'),  # a raw control character in a string
    _entries("01"),
    _entries("1,"),
    _entries('{"a": 1,}'),
    _entries("1").replace(",\n ", " ", 1),  # a missing comma between entries
    _entries("1").replace(', "v": 3}', ', "v": 3', 1),  # an entry that never closes
]


@pytest.mark.parametrize("text", BROKEN, ids=range(len(BROKEN)))
def test_broken_files_fail_the_same_way_after_the_same_entries(text, monkeypatch):
    fast, fast_error = _read(text, fast=True, monkeypatch=monkeypatch)
    slow, slow_error = _read(text, fast=False, monkeypatch=monkeypatch)
    assert slow_error is not None
    assert fast_error == slow_error
    assert _same(fast, slow)


def test_the_fast_path_reads_ordinary_entries(monkeypatch):
    calls: list[int] = []
    decode = jsonarray._whole_entries

    def counting(text: str, start: int):
        items, end = decode(text, start)
        calls.append(len(items or ()))
        return items, end

    monkeypatch.setattr(jsonarray, "_whole_entries", counting)
    items = list(array_items(io.BytesIO(_entries("1").encode()), chunk=8192))
    assert len(items) == 40
    assert sum(calls) > 20  # most entries came through from_json
