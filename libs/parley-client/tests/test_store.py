from __future__ import annotations

from pathlib import Path

import pytest

from parley_client import Key, LocalStore, Record

CHAT = Key("conversation", "c1")


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "client.db")


def test_mutations_are_numbered_consecutively_and_keep_their_bodies(store: LocalStore) -> None:
    put = store.enqueue(CHAT, "put", data={"title": "Trip"}, auto_base=True)
    patch = store.enqueue(CHAT, "patch", fields={"title": "Trip to Rome"}, base_version=4)
    delete = store.enqueue(Key("document", "t1", "todos"), "delete")
    assert [m.mid for m in (put, patch, delete)] == [1, 2, 3]
    assert store.queued() == [put, patch, delete]
    assert delete.wire(None) == {
        "mid": 3, "entity": "document", "op": "delete", "id": "t1", "collection": "todos",
        "hlc": delete.hlc,
    }  # fmt: skip
    assert patch.wire(4)["base_version"] == 4
    assert patch.wire(4)["fields"] == {"title": "Trip to Rome"}


def test_the_app_sees_the_servers_record_with_its_queued_changes_on_top(store: LocalStore) -> None:
    store.apply_page([Record(CHAT, 3, {"title": "Trip", "tags": ["a"]})], "cur-1")
    store.enqueue(CHAT, "patch", fields={"title": "Trip to Rome"})
    assert store.view(CHAT) == {"title": "Trip to Rome", "tags": ["a"]}
    assert store.record(CHAT) == Record(CHAT, 3, {"title": "Trip", "tags": ["a"]})
    store.enqueue(CHAT, "delete")
    assert store.view(CHAT) is None
    assert store.cursor == "cur-1"


def test_an_applied_mutation_moves_the_record_to_the_servers_version(store: LocalStore) -> None:
    store.apply_page([Record(CHAT, 3, {"title": "Trip", "tags": ["a"]})], "c")
    mutation = store.enqueue(CHAT, "patch", fields={"title": "Rome"})
    assert store.confirm(mutation.mid, 4) == mutation
    assert store.queued() == []
    assert store.record(CHAT) == Record(CHAT, 4, {"title": "Rome", "tags": ["a"]})
    assert store.confirm(mutation.mid, 4) is None  # the same result again changes nothing


def test_a_late_result_never_moves_a_record_back(store: LocalStore) -> None:
    mutation = store.enqueue(CHAT, "put", data={"title": "Mine"})
    store.apply_page([Record(CHAT, 6, {"title": "Pulled, newer"})], "c")
    store.confirm(mutation.mid, 5)
    assert store.record(CHAT) == Record(CHAT, 6, {"title": "Pulled, newer"})


def test_a_full_snapshot_forgets_records_the_server_no_longer_has(store: LocalStore) -> None:
    store.apply_page([Record(CHAT, 1, {}), Record(Key("folder", "gone"), 2, {})], "c1")
    store.reset_cursor()
    assert store.cursor == ""
    store.apply_page([Record(CHAT, 5, {"title": "x"})], "c9", forget_all_first=True)
    assert [r.key for r in store.records()] == [CHAT]


def test_renumbering_closes_a_gap_and_keeps_the_order(store: LocalStore) -> None:
    for n in range(1, 6):
        store.enqueue(Key("folder", f"f{n}"), "delete")
    store.confirm(1, None)
    store.confirm(2, None)
    store.renumber(first=3, expected=2)  # the server says it has only mid 1
    assert [(m.mid, m.key.id) for m in store.queued()] == [(2, "f3"), (3, "f4"), (4, "f5")]
    assert store.enqueue(Key("folder", "f6"), "delete").mid == 5


def test_a_conflict_pins_the_base_of_the_edits_queued_after_it(store: LocalStore) -> None:
    first = store.enqueue(CHAT, "patch", fields={"title": "a"}, auto_base=True)
    second = store.enqueue(CHAT, "patch", fields={"title": "b"}, auto_base=True)
    other = store.enqueue(Key("folder", "f"), "patch", fields={"title": "c"}, auto_base=True)
    store.pin_bases({first.mid: 3})
    store.pin_chain(CHAT, first.mid, 3)
    pinned = {m.mid: (m.base_version, m.auto_base) for m in store.queued()}
    assert pinned == {first.mid: (3, False), second.mid: (3, False), other.mid: (None, True)}


def test_a_store_keeps_its_client_id(tmp_path: Path) -> None:
    first = LocalStore(tmp_path / "a.db")
    assert len(first.client_id) == 32
    first.close()
    assert LocalStore(tmp_path / "a.db").client_id == first.client_id
    assert LocalStore(tmp_path / "b.db", client_id="phone-1").client_id == "phone-1"
    with pytest.raises(ValueError, match="stable per store"):
        LocalStore(tmp_path / "b.db", client_id="phone-2")
