from __future__ import annotations

import hashlib

from parley_client import Digest, Key, LocalStore, Record, digest_of


def test_the_digest_is_sha256_over_the_sorted_lines() -> None:
    records = [("message", "m1", 3), ("conversation", "c1", 2), ("preferences", "me", 7)]
    lines = b"conversation|c1|2\nmessage|m1|3\npreferences|me|7\n"
    assert digest_of(records) == Digest(count=3, digest=hashlib.sha256(lines).hexdigest())
    assert digest_of(reversed(records)) == digest_of(records)


def test_no_records_is_the_digest_of_nothing() -> None:
    assert digest_of([]) == Digest(
        0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_lines_sort_as_bytes_not_as_text() -> None:
    # 'Z' (0x5a) sorts before 'a' (0x61) as bytes; 'é' (0xc3 0xa9) after both
    assert digest_of([("folder", "é", 1), ("folder", "a", 1), ("folder", "Z", 1)]).digest == (
        hashlib.sha256(b"folder|Z|1\nfolder|a|1\nfolder|\xc3\xa9|1\n").hexdigest()
    )


def test_the_local_digest_counts_live_records_only(tmp_path) -> None:
    store = LocalStore(tmp_path / "c.db")
    store.apply_page(
        [
            Record(Key("folder", "f1"), 2, {"title": "Work"}),
            Record(Key("folder", "f2"), 3, None),  # a tombstone
            Record(Key("document", "t1", "todos"), 1, {"text": "milk"}),
        ],
        "c1",
    )
    store.enqueue(Key("folder", "f3"), "put", data={"title": "not on the server yet"})
    assert digest_of(store.live_versions()) == digest_of(
        [("folder", "f1", 2), ("document", "todos/t1", 1)]
    )
