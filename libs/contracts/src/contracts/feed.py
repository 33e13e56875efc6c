"""The owners' change feeds as sync reads them (internal HTTP). Chat and auth each serve

    GET /internal/users/{user_id}/changes?after=<seq>&limit=<n>     (application/x-ndjson)

as lines: first a header `{"has_more": bool, "last_seq": int, "seqs": [int, ...]}`, then one
line per change, in seq order, exactly as pull hands it to a device
(`{"entity", "id", "op", "version", "data"?}`: no `data` on a tombstone), `seqs[i]` being the
user's change sequence number of the i-th change; every line ends with a newline.

Why lines: sync splices the owners' changes into its pull answer as the bytes they came in
(no parse, no model per change, no second serialisation of a thousand records), and the
header still tells it each change's seq, to cut a page short and move that owner's
position. JSON never holds a raw newline inside a value, so a line is one change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

MEDIA_TYPE = "application/x-ndjson"
_HEAD = b'{"entity":'
_JSON = TypeAdapter(Any)  # any value to and from JSON, in Rust


class _Header(BaseModel):
    model_config = ConfigDict(strict=True)  # JSON's own types: no "1" for 1, no 0 for false

    has_more: bool
    last_seq: int
    seqs: list[int]


def change_line(
    entity: str,
    id_: str,
    op: str,
    version: int,
    data: Any = None,
    *,
    collection: str | None = None,
) -> bytes:
    """One change as pull shows it (`collection`: documents only), serialised once; `data`
    (None on a tombstone: left out) may be a dict or a pydantic model."""
    change: dict[str, Any] = {"entity": entity, "id": id_}
    if collection is not None:
        change["collection"] = collection
    change["op"] = op
    change["version"] = version
    if data is not None:
        change["data"] = data
    return _JSON.dump_json(change)


@dataclass(frozen=True, slots=True)
class FeedLines:
    """A page of one owner's feed: each change's line and seq, whether more follow, and the
    seq the next page starts after (the last change's, or the `after` asked for)."""

    lines: list[bytes]
    seqs: list[int]
    has_more: bool
    last_seq: int

    def encode(self) -> bytes:
        head = _JSON.dump_json(
            {"has_more": self.has_more, "last_seq": self.last_seq, "seqs": self.seqs}
        )
        return b"".join(line + b"\n" for line in (head, *self.lines))

    @classmethod
    def decode(cls, body: bytes) -> FeedLines:
        """The page of `body`; ValueError when it is not one (a line per seq, each a change
        object, the header's values of the right types)."""
        if not body.endswith(b"\n"):
            raise ValueError("a feed page ends with a newline")
        head, *lines = body[:-1].split(b"\n")
        try:
            header = _Header.model_validate_json(head)
        except ValidationError:
            raise ValueError("the header is not has_more, last_seq and seqs") from None
        if len(header.seqs) != len(lines):
            raise ValueError("one seq per change line")
        if not all(line.startswith(_HEAD) and line.endswith(b"}") for line in lines):
            raise ValueError("a change line is not a change object")
        return cls(lines, header.seqs, header.has_more, header.last_seq)

    def records(self) -> list[dict[str, Any]]:
        """Each change parsed, with its `seq` added: for readers that look inside (tests,
        tools); sync never does."""
        pairs = zip(self.lines, self.seqs, strict=True)
        return [{**_JSON.validate_json(line), "seq": seq} for line, seq in pairs]
