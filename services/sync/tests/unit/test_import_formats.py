"""Every sample reads, and what it holds arrives whole: counts, trees, branch points, the
current branch, exact times, roles, folders, memories and whatever has no column."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from contracts.archive import ConversationRecord, MessageRecord
from sync.imports.values import ID_PATTERN

from .import_support import IMPORTED_AT, OURS, REAL, of_type, read, source_json

# the README's measured facts: conversations and messages of each sample
COUNTS = {
    "chatbotui-export.json": (2, 6),
    "chatgpt-citations.json": (1, 2),
    "chatgpt-export.json": (2, 21),
    "chatgpt-modern-export.json": (3, 7),
    "chatgpt-tree.json": (1, 12),
    "librechat-export.json": (1, 6),
    "librechat-opts-nonr-branches.json": (1, 5),
    "librechat-tree.json": (1, 9),
    "openwebui-export.json": (3, 6),
    "vestai-linear.json": (1, 2),
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def assert_archive_order(records):
    """Folders first; each conversation then its messages, parents before children."""
    kinds = [r.type for r in records]
    if "folder" in kinds:
        assert kinds.index("conversation") > max(i for i, k in enumerate(kinds) if k == "folder")
    current = None
    seen: set[str] = set()
    for record in records:
        if isinstance(record, ConversationRecord):
            current, seen = record, set()
        elif isinstance(record, MessageRecord):
            assert current is not None
            assert record.conversation_id == current.id
            assert record.parent_id is None or record.parent_id in seen
            seen.add(record.id)


def branch_points(messages):
    children = Counter(m.parent_id for m in messages if m.parent_id)
    return sorted(parent for parent, n in children.items() if n > 1)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_every_real_sample_reads_whole(name):
    records, report = read(REAL / name)
    conversations, messages = COUNTS[name]
    assert report.counts.get("conversation") == conversations
    assert report.counts.get("message") == messages
    assert len(of_type(records, "message")) == messages
    assert_archive_order(records)
    for record in records:
        assert ID_PATTERN.match(record.id)
        assert record.provenance["file"] == name  # type: ignore[attr-defined]
        assert record.provenance["source"] == report.files[0].source  # type: ignore[attr-defined]
    for conversation in of_type(records, "conversation"):
        own = [m for m in of_type(records, "message") if m.conversation_id == conversation.id]
        assert conversation.message_count == len(own)
        if own:
            assert conversation.current_leaf_id in {m.id for m in own}


def test_chatgpt_tree_keeps_both_branch_points_and_the_current_branch():
    source = source_json(REAL / "chatgpt-tree.json")[0]
    mapping = source["mapping"]
    with_message = {k for k, n in mapping.items() if n["message"] is not None}
    forks = sorted(k for k in with_message if len(mapping[k]["children"]) == 2)
    assert len(forks) == 2  # what the sample is for

    records, report = read(REAL / "chatgpt-tree.json")
    messages = {m.id: m for m in of_type(records, "message")}
    assert set(messages) == with_message  # UUID node ids are kept as the Parley ids
    assert branch_points(messages.values()) == forks
    for node_id in with_message:
        parent = mapping[node_id]["parent"]
        expected = parent if parent in with_message else None
        assert messages[node_id].parent_id == expected
        create_time = mapping[node_id]["message"]["create_time"]
        if create_time is not None:
            assert messages[node_id].created_at == EPOCH + timedelta(seconds=create_time)
            assert messages[node_id].created_at.timestamp() == create_time
    (conversation,) = of_type(records, "conversation")
    assert conversation.id == source["conversation_id"]
    assert conversation.current_leaf_id == source["current_node"]
    assert conversation.created_at.timestamp() == source["create_time"]
    assert conversation.updated_at.timestamp() == source["update_time"]
    roles = Counter(m.role for m in messages.values())
    assert roles == Counter(
        {"system": 1, "user": 5, "assistant": 6}
    )  # the hidden system node is kept
    assert report.issues == []


def test_chatgpt_tool_results_citations_and_orphans_are_kept():
    source = source_json(REAL / "chatgpt-citations.json")[0]
    records, report = read(REAL / "chatgpt-citations.json")
    tool, reply = of_type(records, "message")
    node = source["mapping"][tool.id]
    assert tool.role == "assistant"
    assert tool.metadata["source"]["role"] == "tool"
    assert tool.metadata["source"]["content"] == node["message"]["content"]
    assert tool.parent_id is None  # its parent is not in the file: kept as a root
    assert tool.metadata["source"]["parent_id"] == node["parent"]
    reply_node = source["mapping"][reply.id]["message"]
    assert reply.parent_id == tool.id
    assert reply.metadata["source"]["metadata"]["citations"] == reply_node["metadata"]["citations"]
    assert reply.content == reply_node["content"]["parts"][0]
    codes = report.issue_codes()
    assert codes == Counter({"ORPHAN_PARENT": 1, "CURRENT_BRANCH_MISSING": 1})
    assert all(issue.file == "chatgpt-citations.json" for issue in report.issues)
    (conversation,) = of_type(records, "conversation")
    assert conversation.current_leaf_id == reply.id
    assert conversation.metadata["source"]["safe_urls"] == source["safe_urls"]


def test_chatgpt_hidden_context_and_entries_without_a_tree_are_kept():
    records, report = read(REAL / "chatgpt-modern-export.json")
    messages = {m.id: m for m in of_type(records, "message")}
    hidden = messages["ctx-node"]
    assert hidden.content == "The user is an SRE.\n\nAnswer concisely."
    assert hidden.metadata["source"]["content"]["content_type"] == "user_editable_context"
    assert hidden.metadata["source"]["metadata"]["is_visually_hidden_from_conversation"]
    assert hidden.metadata["import"]["missing"] == ["created_at"]
    assert messages["assistant-2"].model == "o4-mini"
    corrupted = next(c for c in of_type(records, "conversation") if c.title == "Corrupted entry")
    assert corrupted.message_count == 0
    assert report.issue_codes() == Counter({"NO_MAPPING": 1, "EMPTY_CONVERSATION": 1})
    first = of_type(records, "conversation")[0]
    assert first.created_at == EPOCH + timedelta(seconds=1756000000.123456)
    assert first.model == "gpt-5-thinking"


def test_openwebui_tree_current_branch_and_seconds():
    source = source_json(REAL / "openwebui-export.json")
    records, _ = read(REAL / "openwebui-export.json")
    messages = {m.id: m for m in of_type(records, "message")}
    conversations = {c.id: c for c in of_type(records, "conversation")}
    for chat in source:
        conversation = conversations[chat["id"]]
        assert conversation.current_leaf_id == chat["chat"]["history"]["currentId"]
        assert conversation.created_at == EPOCH + timedelta(seconds=chat["created_at"])
        for key, message in chat["chat"]["history"]["messages"].items():
            assert messages[key].parent_id == message["parentId"]
            assert messages[key].created_at == EPOCH + timedelta(seconds=message["timestamp"])
    reasoning = messages["ra2"]
    assert reasoning.model == "deepseek-r1"
    assert reasoning.metadata["source"]["output"][0]["started_at"] == 1700000007.0


def test_librechat_tree_keeps_its_branch_points():
    source = source_json(REAL / "librechat-tree.json")

    def walk(nodes, parent=None):
        for node in nodes:
            yield node, parent
            yield from walk(node.get("children", []), node["messageId"])

    nodes = list(walk(source["messages"]))
    forks = sorted(n["messageId"] for n, _ in nodes if len(n.get("children", [])) > 1)
    assert len(forks) == 2
    records, _ = read(REAL / "librechat-tree.json")
    messages = {m.id: m for m in of_type(records, "message")}
    assert branch_points(messages.values()) == forks
    for node, parent in nodes:
        assert messages[node["messageId"]].parent_id == parent
        if node.get("createdAt"):
            assert messages[node["messageId"]].created_at == datetime.fromisoformat(
                node["createdAt"]
            )
        else:
            assert messages[node["messageId"]].metadata["import"]["missing"] == ["created_at"]
    (conversation,) = of_type(records, "conversation")
    assert conversation.system_prompt == "You are an expert software engineer."
    assert conversation.model == "gpt-4-turbo"


def test_librechat_flat_branches_keep_their_parents_and_token_counts():
    source = source_json(REAL / "librechat-opts-nonr-branches.json")
    records, _ = read(REAL / "librechat-opts-nonr-branches.json")
    messages = {m.id: m for m in of_type(records, "message")}
    roots = [m for m in messages.values() if m.parent_id is None]
    assert len(roots) == 2
    for message in source["messages"]:
        parent = message["parentMessageId"]
        expected = None if parent == "00000000-0000-0000-0000-000000000000" else parent
        assert messages[message["messageId"]].parent_id == expected
        assert messages[message["messageId"]].created_at == datetime.fromisoformat(
            message["createdAt"]
        )
    first = messages["115a6247-8fb0-4937-a536-12956669098d"]
    assert first.role == "user"
    assert first.prompt_tokens == 9
    reply = messages["069b9c22-7649-45a9-b90b-fc050533ea21"]
    assert reply.completion_tokens == 78
    assert reply.metadata["source"]["sender"] == "GPT-4"


def test_chatbot_ui_rows_without_times_keep_order_folders_and_prompts():
    source = source_json(REAL / "chatbotui-export.json")
    records, _ = read(REAL / "chatbotui-export.json")
    documents = of_type(records, "document")
    assert {d.collection for d in documents} == {"prompts", "prompt_folders"}
    assert [d.data for d in documents if d.collection == "prompts"] == source["prompts"]
    for chat, conversation in zip(source["history"], of_type(records, "conversation"), strict=True):
        assert conversation.title == chat["name"]
        assert conversation.system_prompt == chat["prompt"]
        assert conversation.metadata["source"]["model"] == chat["model"]
        assert conversation.created_at == IMPORTED_AT
        assert conversation.metadata["import"]["missing"] == ["created_at", "updated_at"]
        own = [m for m in of_type(records, "message") if m.conversation_id == conversation.id]
        assert [m.content for m in own] == [m["content"] for m in chat["messages"]]
        assert all(m.metadata["import"]["missing"] == ["created_at"] for m in own)
        assert [m.created_at for m in own] == sorted(m.created_at for m in own)


def test_big_agi_backup_keeps_ms_times_folders_and_v3_v4_messages():
    path = OURS / "big-agi" / "backup.agi.json"
    source = source_json(path)
    records, report = read(path)
    folders = of_type(records, "folder")
    assert [(f.id, f.title, f.color) for f in folders] == [
        ("fold-work", "Work", "#0d6efd"),
        ("fold-code", "Code", "#198754"),
    ]
    conversations = {c.id: c for c in of_type(records, "conversation")}
    assert conversations["HxQ3kz9aT1"].folder_ids == ["fold-work", "fold-code"]
    assert conversations["HxQ3kz9aT1"].folder_id == "fold-work"
    assert conversations["HxQ3kz9aT1"].title == "Regex help"
    assert conversations["HxQ3kz9aT1"].metadata["source"]["autoTitle"] == "Regular expressions"
    messages = {m.id: m for m in of_type(records, "message")}
    for chat in source["conversations"]:
        conversation = conversations[chat["id"]]
        assert conversation.created_at == EPOCH + timedelta(milliseconds=chat["created"])
        assert conversation.updated_at == EPOCH + timedelta(milliseconds=chat["updated"])
        for message in chat["messages"]:
            assert messages[message["id"]].created_at == EPOCH + timedelta(
                milliseconds=message["created"]
            )
    assert messages["m3-a1"].model == "gpt-4-0613"
    assert messages["m3-a1"].completion_tokens == 14
    assert messages["m3-a1"].metadata["source"]["userFlags"] == ["starred"]
    assert messages["v4-a"].content == "Layers, a rain shell, wool socks."
    assert messages["v4-a"].model == "claude-3-5-sonnet"
    assert messages["v4-a"].metadata["source"]["fragments"][0]["part"]["aText"] == "cold, wet"
    assert messages["v4-u"].parent_id == "v4-s"
    assert messages["v4-a"].parent_id == "v4-u"
    assert report.issue_codes() == Counter({"NOT_IMPORTED": 1})
    assert "sk-not-a-real-key" not in str([r.model_dump() for r in records])


def test_big_agi_single_chat_file():
    records, _ = read(OURS / "big-agi" / "regex-help.agi.json")
    (conversation,) = of_type(records, "conversation")
    assert conversation.id == "Zy8vNq2"
    assert conversation.title == "Regex help (single)"
    assert [m.id for m in of_type(records, "message")] == ["m3-u1", "m3-a1"]


@pytest.mark.parametrize("name", ["shared_prefs.json", "FlutterSharedPreferences.xml"])
def test_speechbot_cache_maps_bot_full_content_and_favourites(name):
    records, _ = read(OURS / "speechbot" / name)
    conversation = of_type(records, "conversation")[0]
    assert conversation.id == "chat_1699999999999"
    assert conversation.is_favorite
    assert conversation.metadata["source"]["metadata"] == {"voice": "en-GB", "engine": "whisper"}
    user, bot, thanks = of_type(records, "message")[:3]
    assert bot.role == "assistant"
    assert bot.metadata["source"]["role"] == "bot"
    assert bot.content.startswith("Probably, take an umbrella: 80 %")
    assert bot.metadata["source"]["content"] == "Probably, take an umb…"
    assert bot.model == "gpt-4o"
    assert user.created_at == datetime(2023, 11, 14, 22, 13, 19, 999000, tzinfo=UTC)
    assert bot.created_at == EPOCH + timedelta(milliseconds=1700000001000)
    assert thanks.created_at == EPOCH + timedelta(seconds=1700000102.5)
    assert thanks.content == "Thanks!"
    assert thanks.parent_id == bot.id
    (preferences,) = of_type(records, "document")
    assert preferences.data["flutter.theme_mode"] == "dark"
    assert "flutter.cached_chats" not in preferences.data


def test_chatbot_store_ids_tree_memories_and_missing_files():
    records, report = read(OURS / "chatbot" / "conversations")
    conversation = next(
        c for c in of_type(records, "conversation") if c.title == "Sourdough starter"
    )
    assert conversation.provenance["source_id"] == "17"  # type: ignore[attr-defined]
    assert conversation.id.startswith("chatbot-json-")  # a row number is not an id
    assert conversation.created_at == datetime(2024, 3, 2, 9, 15, 0, 123456, tzinfo=UTC)
    assert conversation.total_tokens == 812
    assert conversation.system_prompt
    assert conversation.metadata["source"]["user_id"] == 3
    assert conversation.metadata["missing_attachments"][0]["original_filename"] == "starter.jpg"
    own = [m for m in of_type(records, "message") if m.conversation_id == conversation.id]
    by_source = {m.provenance["source_id"]: m for m in own}  # type: ignore[attr-defined]
    assert set(by_source) == {"17:1", "17:2", "17:3", "17:4", "17:5"}
    assert by_source["17:2"].parent_id == by_source["17:1"].id
    assert by_source["17:3"].parent_id == by_source["17:1"].id  # the regenerated reply
    assert by_source["17:4"].parent_id == by_source["17:3"].id
    assert by_source["17:3"].created_at == datetime(2024, 3, 2, 8, 16, 10, tzinfo=UTC)
    assert by_source["17:5"].metadata["import"]["missing"] == ["created_at"]
    assert by_source["17:5"].created_at > by_source["17:4"].created_at
    assert conversation.current_leaf_id == by_source["17:5"].id
    assert by_source["17:1"].metadata["missing_attachments"] == [
        {"kind": "image", "url": "/static/uploads/starter.jpg"}
    ]
    (memory,) = of_type(records, "memory")
    assert memory.conversation_id == conversation.id
    assert memory.tags == ["baking", "sourdough"]
    assert memory.rating == 5
    assert memory.question == "Starter feeding ratio?"
    legacy = next(c for c in of_type(records, "conversation") if c.title.startswith("Old chat"))
    assert legacy.id == "6f1c9a2e-3b7d-4c55-9e1a-0b2f4c6d8e10"
    legacy_messages = [m for m in of_type(records, "message") if m.conversation_id == legacy.id]
    assert [m.role for m in legacy_messages] == ["system", "user", "assistant"]
    assert [m.parent_id for m in legacy_messages[1:]] == [m.id for m in legacy_messages[:-1]]
    assert report.issue_codes()["MISSING_ATTACHMENT"] == 3


def test_reading_twice_gives_the_same_ids_and_records():
    first, _ = read(OURS / "chatbot" / "conversations", REAL / "chatgpt-tree.json")
    again, _ = read(OURS / "chatbot" / "conversations", REAL / "chatgpt-tree.json")
    assert [r.model_dump() for r in first] == [r.model_dump() for r in again]
    ids = [r.id for r in first if r.type == "message"]
    assert len(ids) == len(set(ids))
