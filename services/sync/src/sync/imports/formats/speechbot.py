"""SpeechBot's device cache: the app's SharedPreferences dump.

Either a JSON object of the preference keys or Android's XML `<map>` file; Flutter writes
the keys with a `flutter.` prefix. `cached_chats` holds the chats as a JSON **string**
(`id` like `chat_1699999999999`, `title`, `created_at`, `updated_at`, `is_favorite`,
`metadata`, `messages` [`id`, `role` user/bot, `content`, `full_content`, `timestamp`,
`metadata`]). `full_content` is the message text when present (the shorter `content` is
kept in `metadata.source` when it differs); `bot` is the assistant; a chat is a list, each
message's parent is the one before. Times are ISO strings or epoch numbers (milliseconds
when above 10^11). Every other preference key becomes the document `preferences/speechbot`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO
from xml.etree import ElementTree

from contracts.archive import ArchiveRecord
from sync.imports.conversation import ConversationDraft, ReadContext
from sync.imports.records import DocumentRecord
from sync.imports.values import role_of, text_of

_CHAT_MAPPED = {"id", "title", "created_at", "updated_at", "is_favorite", "messages", "metadata"}
_MESSAGE_MAPPED = {"id", "role", "full_content", "timestamp", "metadata"}


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    with open_stream() as stream:
        raw = stream.read()
    preferences = _preferences(raw)
    key = "flutter.cached_chats" if "flutter.cached_chats" in preferences else "cached_chats"
    cached = preferences.pop(key, None)
    chats = json.loads(cached) if isinstance(cached, str) else cached
    if preferences:
        yield DocumentRecord(
            collection="preferences",
            id="speechbot",
            data=preferences,
            provenance=ctx.provenance("preferences"),
        )
    for index, chat in enumerate(chats or []):
        if isinstance(chat, dict):
            yield from _chat(chat, index, ctx)


def _preferences(raw: bytes) -> dict[str, Any]:
    if raw.lstrip().startswith(b"<"):
        if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
            raise ValueError("a SharedPreferences file declares no DTD or entities")
        values: dict[str, Any] = {}
        # no DTD and no entities (refused above): nothing for an XML bomb to expand
        for element in ElementTree.fromstring(raw):  # noqa: S314
            name = element.get("name", "")
            if element.tag == "string":
                values[name] = element.text or ""
            elif element.tag == "set":
                values[name] = [child.text or "" for child in element]
            elif element.tag == "boolean":
                values[name] = element.get("value") == "true"
            elif element.tag in ("int", "long"):
                values[name] = int(element.get("value", "0"))
            elif element.tag == "float":
                values[name] = float(element.get("value", "0"))
        return values
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("a SharedPreferences dump is a JSON object")
    return value


def _chat(chat: dict[str, Any], index: int, ctx: ReadContext) -> Iterator[ArchiveRecord]:
    source_id = chat.get("id") or f"chat-{index}"
    rest = {k: v for k, v in chat.items() if k not in _CHAT_MAPPED}
    metadata: dict[str, Any] = {}
    if rest:
        metadata["source"] = rest
    if isinstance(chat.get("metadata"), dict) and chat["metadata"]:
        metadata.setdefault("source", {})["metadata"] = chat["metadata"]
    draft = ConversationDraft(
        ctx,
        source_id,
        title=chat.get("title"),
        is_favorite=bool(chat.get("is_favorite")),
        metadata=metadata,
        created_at=ctx.time(chat.get("created_at"), where=f"chat {source_id!r} (entry {index})"),
        updated_at=ctx.time(chat.get("updated_at"), where=f"chat {source_id!r} (entry {index})"),
    )
    parent = None
    for position, message in enumerate(chat.get("messages") or []):
        if not isinstance(message, dict):
            continue
        message_id = message.get("id") or f"message-{position}"
        role, keep_role = role_of(message.get("role"))
        extra = {k: v for k, v in message.items() if k not in _MESSAGE_MAPPED}
        full = message.get("full_content")
        text = text_of(full if full else message.get("content"))
        if extra.get("content") == text or (not full and "content" in extra):
            extra.pop("content")
        if keep_role:
            extra["role"] = message.get("role")
        if isinstance(message.get("metadata"), dict) and message["metadata"]:
            extra["metadata"] = message["metadata"]
        model = (
            (message.get("metadata") or {}).get("model")
            if isinstance(message.get("metadata"), dict)
            else None
        )
        draft.add_message(
            message_id,
            parent_source_id=parent,
            created_at=ctx.time(
                message.get("timestamp"), where=f"message {message_id!r} of chat {source_id!r}"
            ),
            role=role,
            content=text,
            model=model if isinstance(model, str) else None,
            metadata={"source": extra} if extra else {},
        )
        parent = message_id
    yield from draft.records()
