"""The Flask ChatBot's store: `conversations/*.json`, one conversation per file.

Fields: `id`, `user_id` (the Flask app's integer user, kept in `metadata.source` for
`parley migrate chatbot-store` to map), `model`, `title`, `system_prompt`, `total_tokens`,
`is_archived`, `created_at`/`updated_at` (ISO, often without an offset: read as UTC),
`messages` [`id` (an integer unique only in its conversation: the Parley id is derived from
conversation and message), `role`, `content`, `images`, `files`, `metadata`, `version`,
`parent_message_id`, `is_edited`, `created_at`], `memories` and `uploaded_files`.

A message's `images` and `files` and the conversation's `uploaded_files` are not in the
store (only their names and paths): each is listed in `metadata.missing_attachments` and
reported as `MISSING_ATTACHMENT`. A message without `parent_message_id` follows the one
before it (older stores had no tree); `parent_message_id: null` on a later message of a
tree-shaped store is a root. Memories follow the conversation, linked to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import ijson

from contracts.archive import ArchiveRecord, MemoryRecord
from sync.imports.conversation import ConversationDraft, ReadContext
from sync.imports.values import derived_id, int_or_none, role_of, text_of

_CONVERSATION_MAPPED = {
    "id", "model", "title", "system_prompt", "total_tokens", "is_archived", "created_at",
    "updated_at", "messages", "memories", "uploaded_files", "tags", "is_favorite",
}  # fmt: skip
_MESSAGE_MAPPED = {
    "id",
    "role",
    "content",
    "images",
    "files",
    "parent_message_id",
    "created_at",
    "updated_at",
}
_MEMORY_MAPPED = {
    "id",
    "question",
    "answer",
    "context",
    "rating",
    "tags",
    "is_public",
    "created_at",
    "updated_at",
}


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    with open_stream() as stream:
        document = next(ijson.items(stream, "", use_float=True))
    if not isinstance(document, dict):
        raise ValueError("a ChatBot conversation file holds one JSON object")
    source_id = document.get("id")
    if source_id is None:
        source_id = ctx.file
        ctx.issue("MISSING_ID", "the conversation has no id; it is named after its file")
    rest = {k: v for k, v in document.items() if k not in _CONVERSATION_MAPPED}
    metadata: dict[str, Any] = {"source": rest} if rest else {}
    missing = [
        {"kind": "uploaded_file", **file}
        for file in document.get("uploaded_files") or []
        if isinstance(file, dict)
    ]
    if missing:
        metadata["missing_attachments"] = missing
        _report_missing(ctx, str(source_id), missing)
    tags = document.get("tags")
    draft = ConversationDraft(
        ctx,
        source_id,
        message_ids_scoped=True,
        title=document.get("title"),
        model=document.get("model"),
        system_prompt=document.get("system_prompt"),
        total_tokens=max(int_or_none(document.get("total_tokens")) or 0, 0),
        is_archived=bool(document.get("is_archived")),
        is_favorite=bool(document.get("is_favorite")),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        metadata=metadata,
        created_at=ctx.time(document.get("created_at"), where=f"conversation {source_id!r}"),
        updated_at=ctx.time(document.get("updated_at"), where=f"conversation {source_id!r}"),
    )
    previous = None
    for position, message in enumerate(document.get("messages") or []):
        if not isinstance(message, dict):
            continue
        message_id = message.get("id", f"position-{position}")
        parent = (
            message.get("parent_message_id", previous)
            if position
            else message.get("parent_message_id")
        )
        draft.add_message(
            message_id,
            parent_source_id=parent,
            **_message(message, str(source_id), ctx),
        )
        previous = message_id
    yield from draft.records()
    for position, memory in enumerate(document.get("memories") or []):
        if isinstance(memory, dict):
            yield _memory(memory, position, str(source_id), draft, ctx)


def _message(message: dict[str, Any], conversation: str, ctx: ReadContext) -> dict[str, Any]:
    rest = {k: v for k, v in message.items() if k not in _MESSAGE_MAPPED}
    role, keep_role = role_of(message.get("role"))
    if keep_role:
        rest["role"] = message.get("role")
    metadata: dict[str, Any] = {"source": rest} if rest else {}
    missing = [{"kind": "image", "url": url} for url in message.get("images") or [] if url] + [
        {"kind": "file", **(file if isinstance(file, dict) else {"name": str(file)})}
        for file in message.get("files") or []
    ]
    if missing:
        metadata["missing_attachments"] = missing
        _report_missing(ctx, f"{conversation}:{message.get('id')}", missing)
    model = (
        (message.get("metadata") or {}).get("model")
        if isinstance(message.get("metadata"), dict)
        else None
    )
    where = f"message {message.get('id')!r} of conversation {conversation!r}"
    return {
        "created_at": ctx.time(message.get("created_at"), where=where),
        "updated_at": ctx.time(message.get("updated_at"), where=where),
        "role": role,
        "content": text_of(message.get("content")),
        "model": model if isinstance(model, str) else None,
        "metadata": metadata,
    }


def _memory(
    memory: dict[str, Any],
    position: int,
    conversation: str,
    draft: ConversationDraft,
    ctx: ReadContext,
) -> MemoryRecord:
    source_id = f"{conversation}:memory:{memory.get('id', position)}"
    created_at = ctx.time(memory.get("created_at"), where=f"memory {source_id!r}")
    rest = {k: v for k, v in memory.items() if k not in _MEMORY_MAPPED}
    fields: dict[str, Any] = {}
    if created_at is None:
        created_at = ctx.imported_at
        fields["metadata"] = {"import": {"missing": ["created_at"]}}
    if rest:
        fields.setdefault("metadata", {})["source"] = rest
    tags = memory.get("tags")
    if isinstance(tags, str):
        tags = [t.strip() for t in tags.split(",") if t.strip()]
    return MemoryRecord(
        id=ctx.claim("memory", derived_id(ctx.source, source_id), source_id),
        question=text_of(memory.get("question")),
        answer=text_of(memory.get("answer")),
        context=memory.get("context") if isinstance(memory.get("context"), str) else None,
        rating=int_or_none(memory.get("rating")),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        is_public=bool(memory.get("is_public")),
        conversation_id=draft.id,
        version=1,
        created_at=created_at,
        updated_at=ctx.time(memory.get("updated_at"), where=f"memory {source_id!r}") or created_at,
        provenance=ctx.provenance(source_id),
        **fields,
    )


def _report_missing(ctx: ReadContext, source_id: str, missing: list[dict[str, Any]]) -> None:
    names = ", ".join(
        str(m.get("original_filename") or m.get("name") or m.get("url") or m.get("kind"))
        for m in missing
    )
    ctx.issue(
        "MISSING_ATTACHMENT",
        f"{len(missing)} attachment(s) of {source_id!r} are not in the store: {names}",
        severity="info",
        source_id=source_id,
    )
