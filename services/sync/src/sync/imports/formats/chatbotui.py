"""chatbot-ui's export (version 4): `history` (conversations), `folders`, `prompts`.

The file has no times at all: every row gets the import time (recorded as missing) and the
messages keep their order through their parent links. Chat folders become folders (`type`
`chat`); prompts and prompt folders have no chat entity and become documents (`prompts`,
`prompt_folders`). The conversation's model object and temperature stay in
`metadata.source`; `prompt` is the system prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import ijson

from contracts.archive import ArchiveRecord, FolderRecord
from sync.imports.conversation import ConversationDraft, ReadContext
from sync.imports.records import DocumentRecord
from sync.imports.values import object_of, parley_id, role_of, text_of

_MAPPED = {"id", "name", "messages", "prompt", "folderId"}


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    with open_stream() as stream:
        document = next(ijson.items(stream, "", use_float=True))
    now = ctx.imported_at
    missing = {"import": {"missing": ["created_at", "updated_at"]}}
    folder_ids: dict[str, str] = {}
    for position, folder in enumerate(document.get("folders") or []):
        source_id = folder.get("id") or f"folder-{position}"
        if folder.get("type", "chat") != "chat":
            yield DocumentRecord(
                collection="prompt_folders",
                id=ctx.claim("document", parley_id(ctx.source, source_id), source_id),
                data=folder,
                provenance=ctx.provenance(source_id),
            )
            continue
        folder_ids[source_id] = ctx.claim("folder", parley_id(ctx.source, source_id), source_id)
        yield FolderRecord(
            id=folder_ids[source_id],
            title=text_of(folder.get("name")),
            sort_order=position,
            version=1,
            created_at=now,
            updated_at=now,
            provenance=ctx.provenance(source_id),
            metadata=missing,
        )
    for index, chat in enumerate(document.get("history") or []):
        yield from _conversation(chat, index, folder_ids, ctx)
    for position, prompt in enumerate(document.get("prompts") or []):
        source_id = prompt.get("id") or f"prompt-{position}"
        yield DocumentRecord(
            collection="prompts",
            id=ctx.claim("document", parley_id(ctx.source, source_id), source_id),
            data=prompt,
            provenance=ctx.provenance(source_id),
        )


def _conversation(
    chat: dict[str, Any], index: int, folder_ids: dict[str, str], ctx: ReadContext
) -> Iterator[ArchiveRecord]:
    source_id = chat.get("id") or f"conversation-{index}"
    model = object_of(chat.get("model"))
    folder = folder_ids.get(chat.get("folderId") or "")
    rest = {k: v for k, v in chat.items() if k not in _MAPPED}
    if chat.get("folderId") and folder is None:
        rest["folderId"] = chat.get("folderId")
    draft = ConversationDraft(
        ctx,
        source_id,
        title=chat.get("name"),
        model=model.get("id"),
        system_prompt=chat.get("prompt"),
        folder_id=folder,
        folder_ids=[folder] if folder else [],
        metadata={"source": rest},
    )
    parent: str | None = None
    for position, message in enumerate(chat.get("messages") or []):
        role, keep_role = role_of(message.get("role"))
        extra = {k: v for k, v in message.items() if k not in ("role", "content")}
        if keep_role:
            extra["role"] = message.get("role")
        message_id = f"{position}"
        draft.add_message(
            message_id,
            parent_source_id=parent,
            created_at=None,
            role=role,
            content=text_of(message.get("content")),
            metadata={"source": extra} if extra else {},
        )
        parent = message_id
    draft.scoped = True  # positions are only unique inside their conversation
    yield from draft.records()
