"""Bad input is reported by file and the rest goes on: cut-short and non-JSON files, odd
encodings, repeated ids, missing parents, empty chats, zips over their limits."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter

import pytest

from sync.imports import ImportLimits, ImportReader, ImportRefused, UnsupportedFormat, dry_run
from sync.imports.jsonarray import array_items

from .import_support import OURS, REAL, of_type, read


def chatgpt_conversation(conversation_id: str, nodes: list[tuple[str, str | None]]) -> dict:
    mapping = {
        node_id: {
            "id": node_id,
            "parent": parent,
            "children": [n for n, p in nodes if p == node_id],
            "message": {
                "id": node_id,
                "author": {"role": "user"},
                "create_time": 1700000000.25 + i,
                "content": {"content_type": "text", "parts": [f"text {node_id}"]},
            },
        }
        for i, (node_id, parent) in enumerate(nodes)
    }
    return {"id": conversation_id, "title": conversation_id, "mapping": mapping}


def test_a_cut_short_array_keeps_its_whole_entries_and_the_other_files_go_on(tmp_path):
    whole = [
        chatgpt_conversation(f"c{i}", [(f"c{i}-a", None), (f"c{i}-b", f"c{i}-a")]) for i in range(3)
    ]
    text = json.dumps(whole)
    cut = tmp_path / "conversations.json"
    cut.write_text(text[: text.index('"c2-b"') + 3])
    records, report = read(cut, REAL / "chatgpt-tree.json")
    assert [c.id for c in of_type(records, "conversation")] == [
        "c0",
        "c1",
        "d5dc5307-6807-41a0-8b04-4acee626eeb7",
    ]
    (issue,) = report.issues
    assert (issue.file, issue.code, issue.severity) == ("conversations.json", "TRUNCATED", "error")
    assert "2 conversation(s), 4 message(s)" in issue.message
    assert [f.complete for f in report.files] == [False, True]
    assert report.counts == {"conversation": 3, "message": 16}


def test_a_cut_short_chatbot_file_is_named_and_its_neighbours_read():
    report = dry_run([OURS / "chatbot" / "conversations"])
    truncated = [i for i in report.issues if i.code == "TRUNCATED"]
    assert [i.file for i in truncated] == ["conversations/20-truncated.json"]
    assert report.counts == {"conversation": 4, "memory": 1, "message": 9}


def test_a_file_that_stops_being_json_is_reported_with_what_it_held(tmp_path):
    path = tmp_path / "conversations.json"
    good = json.dumps(chatgpt_conversation("ok", [("ok-a", None)]))
    path.write_text(f"[{good}, {{not json}}]")
    records, report = read(path)
    assert [c.id for c in of_type(records, "conversation")] == ["ok"]
    assert report.issue_codes() == Counter({"INVALID_JSON": 1})
    assert report.issues[0].file == "conversations.json"


def test_bytes_that_are_not_utf8_are_read_as_windows_1252_and_reported():
    records, report = read(OURS / "chatbot" / "conversations" / "21-latin1.json")
    assert of_type(records, "conversation")[0].title == "Crème brûlée"
    assert of_type(records, "message")[0].content == "Crème brûlée?"
    (issue,) = report.issues
    assert issue.code == "INVALID_UTF8"
    assert "byte 37" in issue.message


def test_a_utf8_bom_and_utf16_files_read(tmp_path):
    document = json.dumps([chatgpt_conversation("bom", [("bom-a", None)])], ensure_ascii=False)
    (tmp_path / "a.json").write_bytes(b"\xef\xbb\xbf" + document.encode())
    (tmp_path / "b.json").write_bytes(document.replace("bom", "utf16").encode("utf-16"))
    records, report = read(tmp_path / "a.json", tmp_path / "b.json")
    assert [c.id for c in of_type(records, "conversation")] == ["bom", "utf16"]
    assert report.issue_codes() == Counter({"ENCODING": 1})


def test_repeated_ids_keep_both_rows_under_distinct_ids(tmp_path):
    twice = chatgpt_conversation("same", [("n1", None), ("n2", "n1")])
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([twice, twice]))
    records, report = read(path)
    first, second = of_type(records, "conversation")
    assert first.id == "same"
    assert second.id != "same"
    assert second.provenance["source_id"] == "same"  # type: ignore[attr-defined]
    messages = of_type(records, "message")
    assert len({m.id for m in messages}) == 4
    assert [m.parent_id for m in messages if m.conversation_id == second.id][1] in {
        m.id for m in messages if m.conversation_id == second.id
    }
    assert report.issue_codes() == Counter({"DUPLICATE_ID": 1})


def test_a_message_id_repeated_in_a_conversation_is_kept_and_reported(tmp_path):
    chat = {"id": "dup-chat", "user_id": 1, "messages": [
        {"id": 1, "role": "user", "content": "first", "created_at": "2024-01-01T00:00:00"},
        {"id": 1, "role": "assistant", "content": "second", "created_at": "2024-01-01T00:00:01"},
    ]}  # fmt: skip
    path = tmp_path / "dup-chat.json"
    path.write_text(json.dumps(chat))
    records, report = read(path)
    assert [m.content for m in of_type(records, "message")] == ["first", "second"]
    assert len({m.id for m in of_type(records, "message")}) == 2
    assert report.issue_codes() == Counter({"DUPLICATE_ID": 1})


def test_a_missing_parent_keeps_the_message_as_a_root_and_says_so(tmp_path):
    conversation = chatgpt_conversation("orphans", [("a", None), ("b", "gone"), ("c", "b")])
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([conversation]))
    records, report = read(path)
    messages = {m.id: m for m in of_type(records, "message")}
    assert messages["b"].parent_id is None
    assert messages["b"].metadata["source"]["parent_id"] == "gone"
    assert messages["c"].parent_id == "b"
    (issue,) = report.issues
    assert issue.code == "ORPHAN_PARENT"
    assert issue.source_id == "b"


def test_a_parent_cycle_is_broken_and_reported(tmp_path):
    conversation = chatgpt_conversation("cycle", [("a", "b"), ("b", "a"), ("c", None)])
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([conversation]))
    records, report = read(path)
    messages = {m.id: m for m in of_type(records, "message")}
    assert len(messages) == 3
    assert messages["a"].parent_id is None
    assert messages["a"].metadata["source"]["parent_id"] == "b"
    assert messages["b"].parent_id == "a"
    assert report.issue_codes() == Counter({"PARENT_CYCLE": 1})


def test_an_empty_conversation_is_kept_and_reported():
    records, report = read(OURS / "chatbot" / "conversations" / "19.json")
    (conversation,) = of_type(records, "conversation")
    assert conversation.message_count == 0
    assert conversation.current_leaf_id is None
    assert report.issue_codes() == Counter({"EMPTY_CONVERSATION": 1})


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_zip_is_read_member_by_member_and_other_files_are_skipped():
    data = zip_of({
        "conversations.json": (REAL / "chatgpt-tree.json").read_bytes(),
        "user.json": b'{"email": "someone@example.com"}',
        "file-abc.png": b"\x89PNG\r\n",
    })  # fmt: skip
    _records, report = read(("export.zip", data))
    assert report.counts == {"conversation": 1, "message": 12}
    assert [f.file for f in report.files] == ["export.zip/conversations.json"]
    assert report.issue_codes() == Counter({"SKIPPED": 2})


def test_a_zip_bomb_is_refused_before_anything_is_read():
    bomb = zip_of({"conversations.json": b"[" + b" " * 5_000_000 + b"]"})
    with pytest.raises(ImportRefused) as refused:
        list(ImportReader([("bomb.zip", bomb)]).records())
    assert refused.value.code == "ZIP_LIMIT"
    assert "zip bomb" in refused.value.message


def test_a_zip_over_its_total_size_is_refused():
    data = zip_of({"a.json": b"[]" * 600, "b.json": b"[]" * 600})
    limits = ImportLimits(max_total_bytes=2000)
    with pytest.raises(ImportRefused, match="unpacks to 2400 bytes, over the limit of 2000"):
        list(ImportReader([("big.zip", data)], limits=limits).records())


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    path = tmp_path / "conversations.json"
    path.write_text("[" + " " * 100 + "]")
    with pytest.raises(ImportRefused) as refused:
        dry_run([path], limits=ImportLimits(max_file_bytes=50))
    assert refused.value.code == "FILE_TOO_LARGE"


def test_a_folder_with_nothing_readable_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFormat, match="no file of a known chat export"):
        dry_run([tmp_path])


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 13, 64])
def test_array_entries_decode_alike_whatever_the_read_size(chunk):
    items = [{"a": None, "d": 'x\u00e9 \\ " y', "e": [1.25, False]}, {"n": 12345}, [], 7, "z"]
    text = json.dumps(items, ensure_ascii=False).encode()
    assert list(array_items(io.BytesIO(text), chunk=chunk)) == items


def test_a_file_full_of_orphans_lists_the_first_and_counts_them_all(tmp_path):
    nodes = [(f"n{i}", f"gone{i}") for i in range(1500)]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps([chatgpt_conversation("many", nodes)]))
    report = dry_run([path])
    assert report.counts == {"conversation": 1, "message": 1500}
    assert report.issue_codes() == Counter({"ORPHAN_PARENT": 1500})
    assert len(report.issues) == 1000


def test_a_declared_source_reads_its_files_in_a_zip_and_skips_the_rest():
    data = zip_of({
        "conversations.json": (REAL / "chatgpt-tree.json").read_bytes(),
        "openwebui.json": (REAL / "openwebui-export.json").read_bytes(),
        "user.json": b'{"email": "someone@example.com"}',
    })  # fmt: skip
    _, report = read(("export.zip", data), source="chatgpt")
    assert report.counts == {"conversation": 1, "message": 12}
    skipped = sorted(i.message for i in report.issues)
    assert skipped[0] == "export.zip/openwebui.json: looks like openwebui, not the declared chatgpt"
    assert report.issue_codes() == Counter({"SKIPPED": 2})


CHATGPT_BAD_TIMES = (
    b'[{"id": "c-ok", "title": "fine", "create_time": 1700000000.5, "mapping": {"k": {"id": "k",'
    b' "parent": null, "children": [], "message": {"id": "k", "author": {"role": "user"},'
    b' "create_time": 1700000001.5, "content": {"content_type": "text", "parts": ["ok"]}}}}},'
    b' {"id": "c-bad", "title": "times", "create_time": 1e20, "update_time": NaN, "mapping": {'
    b'"a": {"id": "a", "parent": null, "children": ["b"], "message": {"id": "a", "author":'
    b' {"role": "user"}, "create_time": Infinity, "content": {"content_type": "text", "parts":'
    b' ["hi"]}}}, "b": {"id": "b", "parent": "a", "children": [], "message": {"id": "b",'
    b' "author": {"role": "assistant"}, "create_time": 1700000002.5, "update_time": -1e20,'
    b' "content": {"content_type": "text", "parts": ["hello"]}}}}}]'
)
# ijson refuses 1e400 and NaN outright (INVALID_JSON): big-AGI's overflows are finite
BIGAGI_BAD_TIMES = (
    b'{"id": "chat-1", "autoTitle": "times", "created": 1e20, "updated": -9e300, "messages": ['
    b'{"id": "m1", "role": "user", "text": "hi", "created": 1e20, "updated": null},'
    b' {"id": "m2", "role": "assistant", "text": "hello", "created": 1711111115789}]}'
)


def test_times_no_datetime_can_hold_are_issues_with_their_place_and_the_file_goes_on(tmp_path):
    chatgpt = tmp_path / "conversations.json"
    chatgpt.write_bytes(CHATGPT_BAD_TIMES)
    bigagi = tmp_path / "chat.agi.json"
    bigagi.write_bytes(BIGAGI_BAD_TIMES)
    records, report = read(chatgpt, bigagi)

    assert report.counts == {"conversation": 3, "message": 5}
    assert all(f.complete for f in report.files)
    bad = [i for i in report.issues if i.code == "UNREADABLE_TIME"]
    assert [(i.file, i.message.split(":")[0]) for i in bad] == [
        ("conversations.json", "conversation 'c-bad' (entry 1)"),
        ("conversations.json", "conversation 'c-bad' (entry 1)"),
        ("conversations.json", "message 'a' of conversation 'c-bad' (entry 1)"),
        ("conversations.json", "message 'b' of conversation 'c-bad' (entry 1)"),
        ("chat.agi.json", "conversation 'chat-1' (entry 0)"),
        ("chat.agi.json", "conversation 'chat-1' (entry 0)"),
        ("chat.agi.json", "message 'm1' of conversation 'chat-1' (entry 0)"),
    ]
    assert "1e+20 seconds since 1970 is no time" in bad[0].message
    assert "nan seconds" in bad[1].message
    assert "inf seconds" in bad[2].message
    assert "-1e+20 seconds" in bad[3].message
    assert "1e+20 milliseconds" in bad[4].message
    assert "-9e+300 milliseconds" in bad[5].message

    # each unreadable time reads as missing: filled in the usual way and marked so
    chat = next(c for c in of_type(records, "conversation") if c.title == "times")
    a, b = (m for m in of_type(records, "message") if m.conversation_id == chat.id)
    assert a.metadata["import"]["missing"] == ["created_at"]
    assert b.created_at.timestamp() == 1700000002.5
    assert b.updated_at == b.created_at
    assert chat.created_at == b.created_at  # its first readable message's time
    assert chat.metadata["import"]["missing"] == ["created_at", "updated_at"]
    m1, m2 = of_type(records, "message")[-2:]
    assert (m1.content, m1.metadata["import"]["missing"]) == ("hi", ["created_at"])
    assert m2.created_at.timestamp() == 1711111115.789
