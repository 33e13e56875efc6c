"""A synthetic archive in the chat stream's exact record format, for benchmarks and tests:
branches, edits, unknown fields, and the text that breaks careless writers (quotes, commas,
newlines, spreadsheet formulas, Markdown, non-Latin scripts, emoji). Test support, kept out
of the export service's package: its tests and bench/export.py both use it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from contracts.archive import (
    AnyRecord,
    ArchiveCounts,
    ArchiveEnd,
    ArchiveHeader,
    ConversationRecord,
    FolderRecord,
    MemoryRecord,
    MessageRecord,
    MessageRevision,
)

TRICKY = [
    'She said "hello, world", then left.',
    "line one\nline two\r\nline three\n",
    '=HYPERLINK("http://evil.example", "click")',
    "+1 555 0100",
    "-2+3",
    "@SUM(A1:A9)",
    "# not a heading\n\n## nor this\n\n---\n",
    "Grüße, Ελληνικά, русский, 中文, العربية, עברית 🙂👍",
    "trailing spaces and newlines   \n\n",
    "tab\tseparated\tvalues",
    "a" * 3000,
]
BASE = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def sample_archive(
    user_id: str = "user-1",
    *,
    conversations: int = 3,
    messages_per_conversation: int = 6,
    memories: int = 2,
    folders: int = 1,
    chat_ids: list[str] | None = None,
    tricky: bool = True,
    start: datetime = BASE,
) -> Iterator[AnyRecord]:
    """Header, folders, conversations with their messages, memories, end."""
    counts = ArchiveCounts(
        folders=folders,
        conversations=conversations,
        messages=conversations * messages_per_conversation,
        memories=memories,
    )
    yield ArchiveHeader(
        user_id=user_id,
        generated_at=start + timedelta(days=30),
        chat_ids=chat_ids,
        include=["folders", "conversations", "memories"],
        counts=counts,
    )
    for f in range(folders):
        yield FolderRecord(
            id=f"folder-{f}",
            title=f'Folder {f}, "quoted"',
            color="#ff0000",
            sort_order=f,
            version=1,
            created_at=start,
            updated_at=start,
        )
    n = 0
    for c in range(conversations):
        cid = chat_ids[c] if chat_ids and c < len(chat_ids) else f"conv-{c:06d}"
        created = start + timedelta(minutes=c)
        yield ConversationRecord(
            id=cid,
            title=f'Conversation {c}: =cmd, "plans"' if tricky else f"Chat {c}",
            model="gpt-test",
            folder_id="folder-0" if folders else None,
            tags=["work", "ü"],
            current_leaf_id=f"{cid}-m{messages_per_conversation - 1}",
            message_count=messages_per_conversation,
            metadata={"source": "sample", "n": c},
            version=2,
            created_at=created,
            updated_at=created,
            future_field={"kept": True},
        )
        parent = None
        for m in range(messages_per_conversation):
            mid = f"{cid}-m{m}"
            at = created + timedelta(seconds=m)
            text = (
                TRICKY[n % len(TRICKY)]
                if tricky
                else f"Message {n} of the benchmark, "
                "with a sentence or two of ordinary text in it, like most messages have."
            )
            n += 1
            role = "user" if m % 2 == 0 else "assistant"
            revisions = (
                [MessageRevision(version=1, content="first draft", replaced_at=at)]
                if tricky and m == 2
                else []
            )
            # a branch: the fourth message answers the second, beside the third
            this_parent = f"{cid}-m1" if m == 3 and messages_per_conversation > 3 else parent
            yield MessageRecord(
                id=mid,
                conversation_id=cid,
                parent_id=this_parent,
                role=role,
                content=text,
                model="gpt-test" if role == "assistant" else None,
                prompt_tokens=12 if role == "assistant" else None,
                metadata={"lang": "en"},
                revisions=revisions,
                version=len(revisions) + 1,
                created_at=at,
                updated_at=at,
            )
            parent = mid
    for r in range(memories):
        yield MemoryRecord(
            id=f"memory-{r}",
            question=f"What is {r}, really?",
            answer=TRICKY[r % len(TRICKY)] if tricky else "An answer.",
            tags=["fact"],
            conversation_id=None,
            version=1,
            created_at=start,
            updated_at=start,
        )
    yield ArchiveEnd(counts=counts)
