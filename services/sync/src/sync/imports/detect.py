"""Which app wrote a file, told from its first bytes and its name (pure: bytes in, name out).

The start of the file is parsed as far as it goes (a cut-off JSON prefix is fine) and the
shape of what was seen decides:

| source | what gives it away |
|---|---|
| `parley` | `{"format": "parley-export", ...}`, or an NDJSON archive whose first line is a header |
| `chatgpt` | an array of objects with `mapping` / `current_node` |
| `openwebui` | an array of objects with `chat.history` |
| `librechat` | an object with `conversationId` and `messages` or `messagesTree` |
| `chatbot-ui` | an object with `version` and `history` |
| `big-agi` | `systemPurposeId`, V3/V4 messages (`fragments`, `originLLM`), `.agi.json` |
| `speechbot` | a `cached_chats` preference (JSON, or the Android `<map>` XML dump) |
| `chatbot-json` | one chat: `messages` and `system_prompt`, `total_tokens`, `parent_message_id` |
"""

from __future__ import annotations

import codecs
import io
import json

import ijson

from sync.imports.errors import UnsupportedFormat

SOURCES = (
    "parley",
    "chatgpt",
    "openwebui",
    "librechat",
    "chatbot-ui",
    "big-agi",
    "speechbot",
    "chatbot-json",
)
PEEK_BYTES = 256 * 1024
_MAX_EVENTS = 20_000
_BIGAGI_MESSAGE_KEYS = {"fragments", "originLLM", "typing", "avatar", "purposeId", "generator"}
_CHATBOT_KEYS = {
    "system_prompt",
    "total_tokens",
    "is_archived",
    "uploaded_files",
    "memories",
    "user_id",
}
_CHATBOT_MESSAGE_KEYS = {"parent_message_id", "is_edited", "images", "files"}


def _shape(head: bytes) -> tuple[set[str], set[str], dict[str, object], str]:
    """Key paths seen (`item.mapping`, `conversations.item.messages.item.text`), the
    top-level keys, a few top-level scalar values, and the kind of the top-level value."""
    paths: set[str] = set()
    keys: set[str] = set()
    values: dict[str, object] = {}
    top = ""
    try:
        for count, (prefix, event, value) in enumerate(ijson.parse(io.BytesIO(head))):
            if count == 0:
                top = {"start_map": "object", "start_array": "array"}.get(event, "scalar")
            if event == "map_key":
                paths.add(f"{prefix}.{value}" if prefix else str(value))
                if not prefix:
                    keys.add(str(value))
            elif prefix in keys and event in ("string", "number", "boolean"):
                values[prefix] = value
            if count > _MAX_EVENTS:
                break
    except ijson.JSONError:
        pass
    return paths, keys, values, top


def _children(paths: set[str], parent: str) -> set[str]:
    depth = parent.count(".") + 1 if parent else 0
    start = f"{parent}." if parent else ""
    return {p.split(".")[depth] for p in paths if p.startswith(start) and p.count(".") >= depth}


def detect_source(name: str, head: bytes) -> str:
    """The source that wrote the file, or UnsupportedFormat naming what its start looks like."""
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        head = head.decode("utf-16", "ignore").encode()
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    lower = name.lower()
    if text.startswith(b"<"):
        if b"cached_chats" in text:
            return "speechbot"
        raise UnsupportedFormat(f"{name}: an XML document without cached_chats")
    if text.startswith(b"{") and b"\n" in text:
        first = text.split(b"\n", 1)[0]
        try:
            line = json.loads(first)
        except ValueError:
            line = None
        if isinstance(line, dict) and line.get("type") == "header" and "format_version" in line:
            return "parley"
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as error:  # odd encodings are read (and reported) later
        if error.start < len(text) - 4:
            text = text.decode("utf-8", "replace").encode()
    paths, keys, values, top = _shape(text)
    if top == "object":
        if values.get("format") == "parley-export":
            return "parley"
        if keys & {"cached_chats", "flutter.cached_chats"}:
            return "speechbot"
        if {"version", "history"} <= keys:
            return "chatbot-ui"
        if "conversationId" in keys and keys & {"messages", "messagesTree"}:
            return "librechat"
        conversation_keys = _children(paths, "conversations.item")
        bigagi_messages = _children(paths, "conversations.item.messages.item")
        if "conversations" in keys and (
            "systemPurposeId" in conversation_keys
            or bigagi_messages & _BIGAGI_MESSAGE_KEYS
            or {"folders", "models"} & keys
            or lower.endswith(".agi.json")
        ):
            return "big-agi"
        message_keys = _children(paths, "messages.item")
        if "messages" in keys and (
            keys & {"systemPurposeId", "userTitle", "autoTitle"}
            or message_keys & _BIGAGI_MESSAGE_KEYS
            or lower.endswith(".agi.json")
        ):
            return "big-agi"
        if "messages" in keys and (keys & _CHATBOT_KEYS or message_keys & _CHATBOT_MESSAGE_KEYS):
            return "chatbot-json"
        raise UnsupportedFormat(
            f"{name}: a JSON object with keys {', '.join(sorted(keys)[:12]) or '(none)'}"
        )
    if top == "array":
        item_keys = _children(paths, "item")
        if item_keys & {"mapping", "current_node"}:
            return "chatgpt"
        if "history" in _children(paths, "item.chat"):
            return "openwebui"
        if not item_keys and text.rstrip().endswith(b"]") and len(text) < 64:
            raise UnsupportedFormat(f"{name}: an empty JSON array (no conversations)")
        raise UnsupportedFormat(
            f"{name}: a JSON array of objects with keys "
            f"{', '.join(sorted(item_keys)[:12]) or '(none)'}"
        )
    start = text[:40].decode("utf-8", "replace")
    raise UnsupportedFormat(f"{name}: not JSON (starts with {start!r})")
