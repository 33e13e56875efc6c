"""The topic registry: every topic, who produces it, and which events travel on it.

Topic names are `<service>.<aggregate>.v<N>`; the partition key is always the owning
user's id; failures go to `<topic>.dlq`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from contracts.envelope import EventPayload
from contracts.events import auth, chat, export, sync

TOPIC_NAME = re.compile(
    r"^(?P<service>[a-z]+)\.(?P<aggregate>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)$"
)
DLQ_SUFFIX = ".dlq"


class UnknownEventType(LookupError):
    """An envelope names an event type its topic does not carry."""


@dataclass(frozen=True)
class Topic:
    """One Kafka topic and the event payload models it carries, by event type."""

    name: str
    events: tuple[type[EventPayload], ...]
    partitions: int = 6
    by_type: dict[str, type[EventPayload]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not TOPIC_NAME.match(self.name):
            raise ValueError(f"topic {self.name!r} is not <service>.<aggregate>.v<N>")
        object.__setattr__(self, "by_type", {e.event_type: e for e in self.events})

    @property
    def producer(self) -> str:
        """The service that owns (and alone publishes to) this topic."""
        return self.name.split(".", 1)[0]

    @property
    def dlq(self) -> str:
        """The dead-letter topic for this topic's consumers."""
        return dlq_name(self.name)

    def payload_model(self, event_type: str) -> type[EventPayload]:
        """The payload model of `event_type`, or UnknownEventType."""
        try:
            return self.by_type[event_type]
        except KeyError:
            raise UnknownEventType(f"{self.name} carries no event {event_type!r}") from None


def dlq_name(topic: str) -> str:
    """`<topic>.dlq`."""
    return topic + DLQ_SUFFIX


AUTH_USER = Topic(
    "auth.user.v1",
    (auth.UserRegistered, auth.UserUpdated, auth.UserDeleted, auth.UserUpgraded),
)
AUTH_SESSION = Topic("auth.session.v1", (auth.SessionsRevoked,))
AUTH_PREFERENCES = Topic("auth.preferences.v1", (auth.PreferencesUpdated,))
AUTH_FLAGS = Topic("auth.flags.v1", (auth.FlagChanged,))
AUTH_EMAIL = Topic("auth.email.v1", (auth.EmailRequested,))
CHAT_CONVERSATION = Topic(
    "chat.conversation.v1", (chat.ConversationChanged, chat.ConversationDeleted)
)
CHAT_MESSAGE = Topic("chat.message.v1", (chat.MessageChanged, chat.MessageDeleted))
CHAT_FOLDER = Topic("chat.folder.v1", (chat.FolderChanged,))
CHAT_MEMORY = Topic("chat.memory.v1", (chat.MemoryChanged,))
CHAT_INGEST = Topic("chat.ingest.v1", (chat.IngestBatch, chat.IngestRollback))
# chat's answers to the ingest commands: sync follows an import's batches and rollback here
CHAT_INGEST_RESULT = Topic(
    "chat.ingest_result.v1",
    (chat.IngestBatchApplied, chat.IngestBatchFailed, chat.IngestRolledBack),
)
EXPORT_JOB = Topic(
    "export.job.v1",
    (export.ExportRequested, export.ExportProgress, export.ExportCompleted, export.ExportFailed),
)
SYNC_IMPORT = Topic(
    "sync.import.v1",
    (
        sync.ImportStarted,
        sync.ImportProgress,
        sync.ImportCompleted,
        sync.ImportFailed,
        sync.ImportRolledBack,
    ),
)
SYNC_DOCUMENT = Topic("sync.document.v1", (sync.DocumentChanged,))
# device mutations: sync sends them to the owner as commands, the owner answers on its own topic
CHAT_COMMAND = Topic("chat.command.v1", (sync.MutationRequested,))
AUTH_COMMAND = Topic("auth.command.v1", (sync.MutationRequested,))
CHAT_MUTATION = Topic("chat.mutation.v1", (sync.MutationResolved,))
AUTH_MUTATION = Topic("auth.mutation.v1", (sync.MutationResolved,))

# commands that sync sends to chat and auth: sync publishes them
_PRODUCER_OVERRIDES = {
    CHAT_INGEST.name: "sync",
    CHAT_COMMAND.name: "sync",
    AUTH_COMMAND.name: "sync",
}

ALL_TOPICS: tuple[Topic, ...] = (
    AUTH_USER,
    AUTH_SESSION,
    AUTH_PREFERENCES,
    AUTH_FLAGS,
    AUTH_EMAIL,
    AUTH_COMMAND,
    AUTH_MUTATION,
    CHAT_CONVERSATION,
    CHAT_MESSAGE,
    CHAT_FOLDER,
    CHAT_MEMORY,
    CHAT_INGEST,
    CHAT_INGEST_RESULT,
    CHAT_COMMAND,
    CHAT_MUTATION,
    EXPORT_JOB,
    SYNC_IMPORT,
    SYNC_DOCUMENT,
)
TOPICS: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}


def publisher_of(topic: Topic) -> str:
    """The service allowed to publish on `topic` (its owner, except for commands)."""
    return _PRODUCER_OVERRIDES.get(topic.name, topic.producer)


def topics_published_by(service: str) -> Iterator[Topic]:
    """Every topic `service` publishes."""
    return (t for t in ALL_TOPICS if publisher_of(t) == service)


def get_topic(name: str) -> Topic:
    """The registered topic called `name`, or KeyError."""
    return TOPICS[name]
