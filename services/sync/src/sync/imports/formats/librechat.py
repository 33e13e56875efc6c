"""LibreChat's conversation export: one conversation per file, in one of three forms.

- recursive (`recursive: true`): `messagesTree` or `messages` nested through `children`;
- flat with branches (`recursive: false`): `messages` linked by `parentMessageId`;
- flat without branches (`branches: false`): the same, a single chain.

The parent id `00000000-0000-0000-0000-000000000000` means "no parent". `isCreatedByUser`
tells user from assistant (the display name `sender` is kept in `metadata.source`); times
are ISO strings (`createdAt`, often missing in tree exports). The file names no current
branch: the last leaf in creation order is current. The conversation's `options` (model,
system prompt, sampling) are kept; `promptPrefix` is the system prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import ijson

from contracts.archive import ArchiveRecord
from sync.imports.conversation import ConversationDraft, ReadContext
from sync.imports.values import int_or_none, object_of, text_of

NO_PARENT = "00000000-0000-0000-0000-000000000000"
_TOP_MAPPED = {"conversationId", "title", "messages", "messagesTree"}
_MESSAGE_MAPPED = {
    "messageId", "parentMessageId", "children", "text", "isCreatedByUser", "model",
    "createdAt", "updatedAt", "tokenCount",
}  # fmt: skip


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    with open_stream() as stream:
        document = next(ijson.items(stream, "", use_float=True))
    options = object_of(document.get("options"))
    rest = {k: v for k, v in document.items() if k not in _TOP_MAPPED}
    draft = ConversationDraft(
        ctx,
        document.get("conversationId") or "conversation",
        title=document.get("title"),
        model=options.get("model"),
        system_prompt=options.get("promptPrefix"),
        metadata={"source": rest},
    )
    tree = document.get("messagesTree")
    if tree is None:
        tree = document.get("messages") or []
    for position, message in enumerate(_walk(tree, None)):
        draft.add_message(**_message(message, position, ctx))
    yield from draft.records()


def _walk(messages: list[Any], parent: str | None) -> Iterator[dict[str, Any]]:
    """Every message of a nested or flat list, with its parent taken from the nesting
    when the message does not name one."""
    for message in messages:
        if not isinstance(message, dict):
            continue
        if parent is not None and not message.get("parentMessageId"):
            message = {**message, "parentMessageId": parent}
        yield message
        children = message.get("children")
        if isinstance(children, list):
            yield from _walk(children, message.get("messageId"))


def _message(message: dict[str, Any], position: int, ctx: ReadContext) -> dict[str, Any]:
    parent = message.get("parentMessageId")
    rest = {k: v for k, v in message.items() if k not in _MESSAGE_MAPPED}
    user = bool(message.get("isCreatedByUser"))
    tokens = int_or_none(message.get("tokenCount"))
    source_id = message.get("messageId") or message.get("_id") or f"message-{position}"
    where = f"message {source_id!r} (position {position})"
    return {
        "source_id": source_id,
        "parent_source_id": None if parent in (None, "", NO_PARENT) else parent,
        "created_at": ctx.time(message.get("createdAt"), where=where),
        "updated_at": ctx.time(message.get("updatedAt"), where=where),
        "role": "user" if user else "assistant",
        "content": text_of(message.get("text")),
        "model": message.get("model"),
        "prompt_tokens": tokens if user else None,
        "completion_tokens": None if user else tokens,
        "status": "failed" if message.get("error") is True else "complete",
        "metadata": {"source": rest} if rest else {},
    }
