"""big-AGI's `*.agi.json`: the full backup (`conversations`, `models`, `folders`) or one chat.

Times are epoch **milliseconds** (`created`, `updated`), read exactly. Messages are V3
(`text`, `originLLM`, `tokenCount`) or V4 (`fragments`: the text of the content fragments'
text parts is the message text, the fragments themselves are kept in `metadata.source`;
`generator.name` is the model). A big-AGI chat is a list: each message's parent is the one
before it, the last is current. `userFlags` `starred` stays in `metadata.source.userFlags`.
Folders (`folders.folders`: `id`, `title`, `color`, `conversationIds`) become folders and
each chat lists every folder that holds it. The backup's `models` (LLM service setups,
which hold API keys) are not imported: the report says so.

The folders come after the conversations in the file, so the file is read twice: folders
first (a small pass), then the conversations one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import ijson

from contracts.archive import ArchiveRecord, FolderRecord
from sync.imports.conversation import ConversationDraft, ReadContext
from sync.imports.values import int_or_none, object_of, parley_id, role_of, text_of

_CONVERSATION_MAPPED = {
    "id",
    "messages",
    "userTitle",
    "autoTitle",
    "created",
    "updated",
    "tokenCount",
}
_MESSAGE_MAPPED = {"id", "role", "text", "originLLM", "tokenCount", "created", "updated"}


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    with open_stream() as stream:
        top = _top_keys(stream)
    if "conversations" not in top:  # a single chat
        with open_stream() as stream:
            chat = next(ijson.items(stream, "", use_float=True))
        yield from _conversation(chat, 0, {}, ctx)
        return
    chat_folders: dict[str, list[str]] = {}
    if "folders" in top:
        with open_stream() as stream:
            folders = list(ijson.items(stream, "folders.folders.item", use_float=True))
        for position, folder in enumerate(folders):
            record = _folder(folder, position, ctx)
            for conversation_id in folder.get("conversationIds") or []:
                chat_folders.setdefault(str(conversation_id), []).append(record.id)
            yield record
    if "models" in top:
        with open_stream() as stream:
            services = sum(1 for _ in ijson.items(stream, "models.sources.item"))
        if services:
            ctx.issue(
                "NOT_IMPORTED",
                f"the backup's {services} model service(s) (with their API keys) are not imported",
                severity="info",
            )
    with open_stream() as stream:
        for index, chat in enumerate(ijson.items(stream, "conversations.item", use_float=True)):
            yield from _conversation(chat, index, chat_folders, ctx)


def _top_keys(stream: BinaryIO) -> set[str]:
    keys: set[str] = set()
    for prefix, event, value in ijson.parse(stream):
        if prefix == "" and event == "map_key":
            keys.add(value)
            if value == "conversations":
                # a backup: the rest of the keys are looked for by their own passes
                return keys | {"folders", "models"}
    return keys


def _folder(folder: dict[str, Any], position: int, ctx: ReadContext) -> FolderRecord:
    source_id = folder.get("id") or f"folder-{position}"
    rest = {k: v for k, v in folder.items() if k not in ("id", "title", "color", "conversationIds")}
    return FolderRecord(
        id=ctx.claim("folder", parley_id(ctx.source, source_id), source_id),
        title=text_of(folder.get("title")),
        color=folder.get("color") if isinstance(folder.get("color"), str) else None,
        sort_order=position,
        version=1,
        created_at=ctx.imported_at,
        updated_at=ctx.imported_at,
        provenance=ctx.provenance(source_id),
        metadata={"source": rest, "import": {"missing": ["created_at", "updated_at"]}},
    )


def _conversation(
    chat: dict[str, Any], index: int, chat_folders: dict[str, list[str]], ctx: ReadContext
) -> Iterator[ArchiveRecord]:
    source_id = chat.get("id") or f"conversation-{index}"
    rest = {k: v for k, v in chat.items() if k not in _CONVERSATION_MAPPED}
    if chat.get("autoTitle") is not None and chat.get("userTitle"):
        rest["autoTitle"] = chat["autoTitle"]
    folders = chat_folders.get(str(source_id), [])
    where = f"conversation {source_id!r} (entry {index})"
    draft = ConversationDraft(
        ctx,
        source_id,
        title=chat.get("userTitle") or chat.get("autoTitle"),
        folder_id=folders[0] if folders else None,
        folder_ids=folders,
        total_tokens=max(int_or_none(chat.get("tokenCount")) or 0, 0),
        metadata={"source": rest} if rest else {},
        created_at=ctx.time(chat.get("created"), unit="ms", where=where),
        updated_at=ctx.time(chat.get("updated"), unit="ms", where=where),
    )
    parent = None
    for position, message in enumerate(chat.get("messages") or []):
        if not isinstance(message, dict):
            continue
        message_id = message.get("id") or f"message-{position}"
        fields = _message(message, f"message {message_id!r} of {where}", ctx)
        draft.add_message(message_id, parent_source_id=parent, **fields)
        parent = message_id
    yield from draft.records()


def _message(message: dict[str, Any], where: str, ctx: ReadContext) -> dict[str, Any]:
    rest = {k: v for k, v in message.items() if k not in _MESSAGE_MAPPED}
    role, keep_role = role_of(message.get("role"))
    if keep_role:
        rest["role"] = message.get("role")
    if isinstance(message.get("fragments"), list):  # V4
        text = "\n\n".join(
            fragment["part"]["text"]
            for fragment in message["fragments"]
            if isinstance(fragment, dict)
            and fragment.get("ft") == "content"
            and isinstance(fragment.get("part"), dict)
            and fragment["part"].get("pt") == "text"
            and isinstance(fragment["part"].get("text"), str)
        )
        generator = object_of(message.get("generator"))
        model = generator.get("name")
    else:  # V3
        text = text_of(message.get("text"))
        model = message.get("originLLM")
    tokens = int_or_none(message.get("tokenCount"))
    user = role == "user"
    return {
        "created_at": ctx.time(message.get("created"), unit="ms", where=where),
        "updated_at": ctx.time(message.get("updated"), unit="ms", where=where),
        "role": role,
        "content": text,
        "model": model if isinstance(model, str) else None,
        "prompt_tokens": tokens if user else None,
        "completion_tokens": None if user else tokens,
        "status": "cancelled" if message.get("pendingIncomplete") else "complete",
        "metadata": {"source": rest} if rest else {},
    }
