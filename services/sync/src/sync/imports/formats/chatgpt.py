"""ChatGPT's `conversations.json`: an array of conversations, each a `mapping` tree.

Streamed one conversation at a time (`item`), so a file of any size reads in the memory of
its largest conversation. Every node with a message becomes a message, hidden and system
nodes and tool results included (`author.role` tool → assistant, the role kept in
`metadata.source.role`); nodes without a message (the root) are skipped and their children
hang on the nearest ancestor that has one. `current_node` is the current branch. Times are
float epoch seconds. The text is the content's string parts joined by blank lines (code,
quotes, browsing results: their text field); the content object itself is kept in
`metadata.source.content` whenever that text does not say all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO

from contracts.archive import ArchiveRecord
from sync.imports.conversation import ConversationDraft, ReadContext
from sync.imports.formats import each_entry
from sync.imports.values import UnreadableTime, from_epoch_seconds, object_of, read_time, role_of

_CONVERSATION_MAPPED = {
    "id", "conversation_id", "title", "create_time", "update_time", "mapping",
    "current_node", "default_model_slug", "is_archived", "is_starred",
}  # fmt: skip
_MESSAGE_MAPPED = {"id", "create_time", "update_time", "content"}
# role_of for the roles ChatGPT writes, looked up once (this runs for every message)
_ROLES = {role: role_of(role) for role in ("user", "assistant", "system", "tool")}


def read(open_stream: Callable[[], BinaryIO], ctx: ReadContext) -> Iterator[ArchiveRecord]:
    return each_entry(open_stream, ctx, _conversation)


def _conversation(item: dict[str, Any], index: int, ctx: ReadContext) -> Iterator[ArchiveRecord]:
    source_id = item.get("conversation_id") or item.get("id") or f"entry-{index}"
    rest = {k: v for k, v in item.items() if k not in _CONVERSATION_MAPPED}
    where = f"conversation {source_id!r} (entry {index})"
    draft = ConversationDraft(
        ctx,
        source_id,
        title=item.get("title"),
        model=item.get("default_model_slug"),
        is_archived=bool(item.get("is_archived")),
        is_favorite=bool(item.get("is_starred")),
        metadata={"source": rest} if rest else {},
        created_at=ctx.time(item.get("create_time"), unit="s", where=where),
        updated_at=ctx.time(item.get("update_time"), unit="s", where=where),
    )
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        ctx.issue(
            "NO_MAPPING",
            f"conversation {source_id!r} has no message tree; kept without messages",
            source_id=str(source_id),
        )
        yield from draft.records()
        return

    def carrier(node_id: str | None) -> str | None:
        """The nearest node from node_id up that holds a message (or an unknown id)."""
        seen = 0
        while node_id is not None:
            node = mapping.get(node_id)
            if node is None or node.get("message") is not None or seen > len(mapping):
                return node_id
            node_id = node.get("parent")
            seen += 1
        return None

    add = draft.add_message_fields
    for node_id, node in mapping.items():
        message = node.get("message") if type(node) is dict else None
        if message is None:
            continue
        parent = node.get("parent")
        above = mapping.get(parent) if parent is not None else None
        if above is not None and above.get("message") is None:  # the root, or a gap
            parent = carrier(parent)
        fields = _message_fields(message)
        try:
            created_at = _time(message.get("create_time"))
            fields["updated_at"] = _time(message.get("update_time"))
        except UnreadableTime:  # reported, and read as missing, one by one
            at = f"message {node_id!r} of {where}"
            created_at = ctx.time(message.get("create_time"), unit="s", where=at)
            fields["updated_at"] = ctx.time(message.get("update_time"), unit="s", where=at)
        add(node_id, parent, created_at, fields)
    draft.current_source_id = carrier(item.get("current_node"))
    yield from draft.records()


def _time(value: Any) -> datetime | None:
    # the usual float seconds without read_time's dispatch (the same sum)
    return from_epoch_seconds(value) if type(value) is float else read_time(value, unit="s")


def _message_fields(message: dict[str, Any]) -> dict[str, Any]:
    source = message.copy()  # then the mapped keys out: cheaper than a comprehension
    for key in _MESSAGE_MAPPED:
        source.pop(key, None)
    source_role = object_of(message.get("author")).get("role")
    known = _ROLES.get(source_role) if type(source_role) is str else None
    role, keep_role = known or role_of(source_role)
    if keep_role:
        source["role"] = source_role
    content = message.get("content")
    parts = content.get("parts") if type(content) is dict else None
    # _text's usual case, inline: one string part and nothing else to keep
    usual = (
        type(parts) is list
        and len(parts) == 1
        and type(parts[0]) is str
        and len(content) == 2  # type: ignore[arg-type]
        and content.get("content_type") == "text"  # type: ignore[union-attr]
    )
    if usual:
        text = parts[0]  # type: ignore[index]
    else:
        text, complete = _text(object_of(content))
        if not complete:
            source["content"] = content
    metadata = message.get("metadata")
    model = metadata.get("model_slug") if type(metadata) is dict else None
    return {
        "role": role,
        "content": text,
        "model": model if isinstance(model, str) else None,
        "status": "failed" if message.get("status") == "failed" else "complete",
        "metadata": {"source": source},
    }


def _text(content: dict[str, Any]) -> tuple[str, bool]:
    """The content's text, and whether that text is all the content holds."""
    kind = content.get("content_type")
    parts = content.get("parts")
    if kind == "text" and type(parts) is list and len(parts) == 1 and type(parts[0]) is str:
        return parts[0], len(content) == 2  # the usual message: one string part
    if kind == "text" and isinstance(parts, list):
        if all(isinstance(p, str) for p in parts):
            return "\n\n".join(parts), len(parts) <= 1
        return "\n\n".join(p for p in parts if isinstance(p, str)), False
    if isinstance(parts, list):
        return "\n\n".join(p for p in parts if isinstance(p, str)), False
    for key in ("text", "result"):
        if isinstance(content.get(key), str):
            return content[key], False
    if kind == "user_editable_context":
        texts = [content.get("user_profile"), content.get("user_instructions")]
        return "\n\n".join(t for t in texts if isinstance(t, str)), False
    return "", False
