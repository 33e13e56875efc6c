"""Open WebUI's chat export: an array of chats, each `chat.history.messages` keyed by id.

Messages link by `parentId` (`childrenIds` is the same tree seen from above and is not
needed), `history.currentId` is the current branch; times are epoch seconds. `pinned` is a
favourite, `archived` archived, `chat.tags`/`tags` the tags. Open WebUI's `folder_id` names
a folder the export does not contain, so it stays in `metadata.source`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from contracts.archive import ArchiveRecord
from sync.imports.conversation import ConversationDraft, ReadContext
from sync.imports.formats import each_entry
from sync.imports.values import int_or_none, object_of, role_of, text_of

_CHAT_MAPPED = {"id", "title", "chat", "created_at", "updated_at", "archived", "pinned"}
_BODY_MAPPED = {"title", "history", "models", "tags"}
_MESSAGE_MAPPED = {"id", "parentId", "childrenIds", "role", "content", "model", "timestamp"}


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    return each_entry(open_stream, ctx, _chat)


def _chat(item: dict[str, Any], index: int, ctx: ReadContext) -> Iterator[ArchiveRecord]:
    body = object_of(item.get("chat"))
    history = object_of(body.get("history"))
    source: dict[str, Any] = {k: v for k, v in item.items() if k not in _CHAT_MAPPED}
    source.update({f"chat.{k}": v for k, v in body.items() if k not in _BODY_MAPPED})
    source.update(
        {f"history.{k}": v for k, v in history.items() if k not in ("messages", "currentId")}
    )
    models = body.get("models") or []
    tags = body.get("tags") or item.get("tags") or object_of(item.get("meta")).get("tags") or []
    where = f"{item.get('id')!r} (entry {index})"
    draft = ConversationDraft(
        ctx,
        item.get("id") or f"entry-{index}",
        title=item.get("title") or body.get("title"),
        model=models[0] if models and isinstance(models[0], str) else None,
        tags=[t.get("name", "") if isinstance(t, dict) else str(t) for t in tags],
        is_favorite=bool(item.get("pinned")),
        is_archived=bool(item.get("archived")),
        metadata={"source": {**source, "models": models}} if len(models) > 1 or source else {},
        created_at=ctx.time(item.get("created_at"), unit="s", where=f"chat {where}"),
        updated_at=ctx.time(item.get("updated_at"), unit="s", where=f"chat {where}"),
    )
    messages = history.get("messages") or {}
    for key, message in messages.items():
        if not isinstance(message, dict):
            continue
        role, keep_role = role_of(message.get("role"))
        rest = {k: v for k, v in message.items() if k not in _MESSAGE_MAPPED}
        if keep_role:
            rest["role"] = message.get("role")
        usage = object_of(message.get("usage"))
        draft.add_message(
            message.get("id") or key,
            parent_source_id=message.get("parentId"),
            created_at=ctx.time(
                message.get("timestamp"), unit="s", where=f"message {key!r} of chat {where}"
            ),
            role=role,
            content=text_of(message.get("content")),
            model=message.get("model"),
            prompt_tokens=int_or_none(usage.get("prompt_tokens")),
            completion_tokens=int_or_none(usage.get("completion_tokens")),
            metadata={"source": rest} if rest else {},
        )
    draft.current_source_id = history.get("currentId")
    yield from draft.records()
