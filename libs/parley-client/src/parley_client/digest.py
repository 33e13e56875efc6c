"""The digest a client and the server compute over the same records, to prove they agree:
SHA-256 hex over the lines `f"{entity}|{id}|{version}\\n"` of every live record, sorted as
byte strings; `count` is the number of lines. A document's id in its line is
`collection/id` ('/' is in no id, so the line is unique)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Digest:
    count: int
    digest: str


def digest_of(records: Iterable[tuple[str, str, int]]) -> Digest:
    """The digest of live records given as `(entity, id, version)`."""
    lines = sorted(f"{entity}|{id_}|{version}\n".encode() for entity, id_, version in records)
    sha = hashlib.sha256()
    for line in lines:
        sha.update(line)
    return Digest(count=len(lines), digest=sha.hexdigest())
