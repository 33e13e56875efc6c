"""The import job's pure rules: batches are the same for the same input (what a resumed
worker relies on), chat's kinds only, and validation's verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from contracts.ingest import ConversationSummary, conversation_digest
from sync.importing import domain
from sync.imports import ImportReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def records() -> list:  # type: ignore[type-arg]
    files = sorted((FIXTURES / "chatbot" / "conversations").glob("*.json"))
    return list(ImportReader(files, imported_at=datetime(2026, 1, 1, tzinfo=UTC)).records())


def test_the_same_input_gives_the_same_batches_of_chats_records_only() -> None:
    first = [(b.index, b.lines) for b in domain.batches(records(), 3)]
    second = [(b.index, b.lines) for b in domain.batches(records(), 3)]
    assert first == second
    assert [i for i, _ in first] == list(range(len(first)))
    assert all(len(lines) <= 3 for _, lines in first)
    sent = sum(len(lines) for _, lines in first)
    assert sent == sum(1 for r in records() if r.type in domain.CHAT_KINDS)


def test_an_empty_input_still_gives_one_batch_so_the_job_can_end() -> None:
    assert [b.index for b in domain.batches([], 10)] == [0]


def test_validation_is_clean_only_when_every_record_is_accounted_for_and_digests_match() -> None:
    source = domain.SourceSide()
    for record in records():
        source.add(record)
    chats = [
        ConversationSummary(
            id=chat_id,
            imported=True,
            message_count=len(messages),
            digest=conversation_digest(messages),
        )
        for chat_id, messages in source.messages.items()
    ]
    stored = dict(source.counts)
    clean = domain.compare(source, stored, {}, {}, chats, set())
    assert clean["clean"], clean

    short = {**stored, "messages": stored["messages"] - 1}
    assert not domain.compare(source, short, {}, {}, chats, set())["clean"]
    explained = domain.compare(source, short, {}, {"messages": 1}, chats, set())
    assert explained["clean"]

    wrong = [chats[0].model_copy(update={"digest": "0" * 64}), *chats[1:]]
    verdict = domain.compare(source, stored, {}, {}, wrong, set())
    assert not verdict["clean"]
    assert verdict["mismatches"][0]["id"] == chats[0].id
    assert domain.compare(source, stored, {}, {}, wrong, {chats[0].id})["clean"]


def test_documents_ride_along_with_the_batch_they_were_read_in() -> None:
    speechbot = FIXTURES / "speechbot" / "shared_prefs.json"
    read = list(ImportReader([speechbot]).records())
    documents = [r for r in read if r.type == "document"]
    assert documents
    carried = [d for b in domain.batches(read, 2) for d in b.documents]
    assert carried == documents


def test_a_document_written_twice_keeps_its_first_before_and_its_last_version() -> None:
    added = domain.document_added([], "prompts", "p1", 1, None)
    added = domain.document_added(added, "prefs", "theme", 4, {"dark": False})
    added = domain.document_added(added, "prompts", "p1", 2, {"ignored": True})
    assert added == [
        {"collection": "prompts", "id": "p1", "version": 2, "before": None},
        {"collection": "prefs", "id": "theme", "version": 4, "before": {"dark": False}},
    ]


def test_a_rollback_removes_restores_or_keeps_each_document_as_it_is_now() -> None:
    created = {"collection": "prompts", "id": "p1", "version": 1, "before": None}
    updated = {"collection": "prefs", "id": "theme", "version": 4, "before": {"dark": False}}
    assert domain.document_rollback(created, 1, False, force=False) == "remove"
    assert domain.document_rollback(updated, 4, False, force=False) == "restore"
    # the user changed it since: kept, unless forced
    assert domain.document_rollback(created, 2, False, force=False) == "keep"
    assert domain.document_rollback(updated, 5, False, force=True) == "restore"
    assert domain.document_rollback(created, 2, True, force=True) == "nothing"  # deleted
    assert domain.document_rollback(created, None, False, force=True) == "nothing"  # gone
