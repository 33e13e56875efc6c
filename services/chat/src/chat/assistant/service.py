"""Assistant replies: a user message in, the assistant's answer out, token by token, to every
device that has the chat open.

The reply is stored as a `streaming` message in the same transaction as the message it
answers, before the first chunk; its text so far is saved at most every `reply_flush_ms` or
`reply_flush_chunks`; its completion (`complete`, `failed` with an error code, or
`cancelled` with the partial text) is one versioned change with its event. A process that
dies mid-reply leaves a `streaming` row that the sweep marks `failed` (INTERRUPTED), partial
text kept. Generation runs in the process that took the request, independent of the
connection that asked: a client that goes away does not stop its reply."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from chat import changes
from chat.assistant.choice import Providers
from chat.assistant.providers import Prompt, Provider, ProviderError, Turn, Usage, trim_history
from chat.cache import ChatCache
from chat.conversations.repository import ConversationRepository
from chat.live.hub import LiveEvent, LiveHub
from chat.messages import service as messages
from chat.messages.repository import MessageRepository
from chat.messages.schemas import MessageIn, MessageOut
from chat.models import Conversation
from chat.settings import Settings
from servicekit.errors import ValidationFailed
from servicekit.limits import Bucket, FixedWindows, RateSpec, rate_limited
from servicekit.retry import retrying
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)

MESSAGES_SENT = Counter("messages_sent_total", "messages sent through live chats", ["type"])
REPLY_FIRST_CHUNK = Histogram(
    "reply_time_to_first_chunk_seconds",
    "from the user's message stored to the first chunk",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REPLY_DURATION = Histogram(
    "reply_duration_seconds",
    "from the user's message stored to the reply completed",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
REPLIES_FINISHED = Counter("chat_replies_total", "replies finished, by status", ["status"])

HISTORY_MAX_MESSAGES = 200  # of the branch, before the character budget trims it
LIVE_STATE_TTL = 3600
STORE_END_ATTEMPTS = 4  # over about 3.5 s, before the end is left to the sweep
INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True)
class Started:
    """What a send or a regenerate stored: the user's new messages and the reply being
    generated (`reply` is None when the send was a retry of messages already stored)."""

    messages: list[MessageOut]
    reply: MessageOut | None


@dataclass
class _Running:
    task: asyncio.Task[None]
    user_id: str
    chat_id: str
    stop_reason: str | None = None  # "cancelled" by the user, "interrupted" by shutdown
    finishing: bool = False  # storing its end: a cancel now would only cut the announcement


@dataclass
class _Progress:
    """A reply as it is being generated."""

    started: float
    pieces: list[str] = field(default_factory=list)
    published: int = 0  # pieces sent as chunks so far
    first_chunk_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class Replies:
    """Starts, streams, cancels and finishes assistant replies."""

    def __init__(
        self,
        settings: Settings,
        uow: Callable[[], UnitOfWork],
        hub: LiveHub,
        providers: Providers,
        redis: Redis,
        cache: ChatCache,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.uow = uow
        self.hub = hub
        self.providers = providers
        self.redis = redis
        self.cache = cache
        self.clock = clock
        self.prefix = settings.redis_key_prefix
        self.send_limits = FixedWindows(redis, self.prefix)
        self._running: dict[str, _Running] = {}

    # -- starting --------------------------------------------------------------------------

    async def send(
        self, uow: UnitOfWork, user_id: str, chat_id: str, incoming: Sequence[MessageIn]
    ) -> Started:
        """Store the user's message(s) and a `streaming` reply to the last one in the caller's
        unit of work; the reply is generated once the caller commits. A retried send (its
        last message id is stored already) starts nothing."""
        if incoming[-1].role != "user":
            raise ValidationFailed(
                "a reply answers a user message: the last message's role must be 'user'",
                {"role": incoming[-1].role},
            )
        await self.charge(user_id)
        conversation = await messages.live_conversation(uow, user_id, chat_id)
        last_id = incoming[-1].id  # a retried send: stored already, nothing to generate
        if last_id and await MessageRepository(uow.session).existing(user_id, [last_id]):
            stored = await messages.store(
                uow, self.settings, user_id, chat_id, incoming, self.clock()
            )
            return Started(messages=stored.messages, reply=None)
        provider = self.providers.for_model(conversation.model)
        stored = await messages.store(
            uow,
            self.settings,
            user_id,
            chat_id,
            [*incoming, self._placeholder(provider, conversation)],
            self.clock(),
        )
        *sent, reply = stored.messages
        prompt = await self._prompt(uow, conversation, reply, provider)
        uow.after_commit(lambda: self._start(user_id, chat_id, reply, provider, prompt, sent))
        return Started(messages=sent, reply=reply)

    async def regenerate(
        self, uow: UnitOfWork, user_id: str, chat_id: str, message_id: str
    ) -> Started:
        """A new reply beside `message_id` (an assistant message) or below it (a user
        message): a sibling branch, which becomes the current one. Stored in the caller's
        unit of work; generated once the caller commits."""
        await self.charge(user_id)
        conversation = await messages.live_conversation(uow, user_id, chat_id)
        target = await MessageRepository(uow.session).get(user_id, chat_id, message_id)
        if target is None:
            raise messages.message_not_found(message_id)
        parent = target.parent_id if target.role == "assistant" else target.id
        if parent is None:
            raise ValidationFailed(
                "this message answers nothing to regenerate from", {"message_id": message_id}
            )
        provider = self.providers.for_model(conversation.model)
        placeholder = self._placeholder(provider, conversation, parent_id=parent)
        stored = await messages.store(
            uow, self.settings, user_id, chat_id, [placeholder], self.clock()
        )
        reply = stored.messages[0]
        prompt = await self._prompt(uow, conversation, reply, provider)
        uow.after_commit(lambda: self._start(user_id, chat_id, reply, provider, prompt, []))
        return Started(messages=[], reply=reply)

    async def _start(
        self,
        user_id: str,
        chat_id: str,
        reply: MessageOut,
        provider: Provider,
        prompt: Prompt,
        sent: list[MessageOut],
    ) -> None:
        """Once the reply's row is committed: generate it, and tell every device about the
        user's messages. Launched before anything else can be awaited (a closing connection
        cannot orphan the stored reply), but it streams only once `new_message` went out."""
        announced = asyncio.Event()
        self._launch(user_id, chat_id, reply, provider, prompt, announced)
        try:
            await self.cache.forget_chat(user_id, chat_id)
            for message in sent:
                MESSAGES_SENT.labels("user").inc()
                await self._publish(
                    user_id, chat_id, "new_message", {"message": message.model_dump(mode="json")}
                )
        finally:
            announced.set()

    async def charge(self, user_id: str) -> None:
        """Count one send against the user's per-minute limit (RateLimited over it). If Redis
        cannot count, the send goes ahead."""
        limit = self.settings.send_rate_per_minute
        try:
            [sends] = await self.send_limits.charge(
                [Bucket(f"send-limit:{user_id}", RateSpec(limit, 60))]
            )
        except (RedisError, OSError) as exc:
            log.warning("send limit not counted", error=repr(exc))
            return
        if sends.exceeded:
            wait = max(math.ceil(sends.reset_seconds), 1)
            raise rate_limited(
                f"at most {limit} messages a minute: wait {wait} s", wait, limit=limit
            )

    async def _prompt(
        self, uow: UnitOfWork, conversation: Conversation, reply: MessageOut, provider: Provider
    ) -> Prompt:
        """What the reply is generated from: the conversation's model and system prompt and
        its branch up to the message the reply answers, trimmed to the budget (and to the
        turns the provider reads)."""
        assert reply.parent_id is not None, "a reply always answers a message"
        budget = self.settings.history_budget_chars
        steps = min(HISTORY_MAX_MESSAGES, provider.history_turns or HISTORY_MAX_MESSAGES)
        rows = await MessageRepository(uow.session).history(
            conversation.user_id, conversation.id, reply.parent_id, steps, budget
        )
        turns = [
            Turn(role, content)
            for role, content, status in rows
            if content and status != "streaming"
        ]
        return Prompt(
            model=conversation.model,
            system_prompt=conversation.system_prompt,
            history=trim_history(turns, budget),
        )

    @staticmethod
    def _placeholder(provider: Provider, conversation: Conversation, **parent: str) -> MessageIn:
        """The reply as stored before its first chunk. `metadata.provider` marks it as one
        the service generates: only those are cancelled or swept, never a client's own
        `streaming` rows."""
        return MessageIn(
            role="assistant",
            content="",
            status="streaming",
            model=provider.model_name(conversation.model),
            metadata={"provider": provider.name},
            **parent,
        )

    def _launch(
        self,
        user_id: str,
        chat_id: str,
        reply: MessageOut,
        provider: Provider,
        prompt: Prompt,
        announced: asyncio.Event,
    ) -> None:
        task = asyncio.create_task(
            self._generate(user_id, chat_id, reply, provider, prompt, announced),
            name=f"reply-{reply.id}",
        )
        self._running[reply.id] = _Running(task, user_id, chat_id)
        task.add_done_callback(lambda _: self._running.pop(reply.id, None))

    # -- generating ------------------------------------------------------------------------

    async def _generate(
        self,
        user_id: str,
        chat_id: str,
        reply: MessageOut,
        provider: Provider,
        prompt: Prompt,
        announced: asyncio.Event,
    ) -> None:
        progress = _Progress(started=time.perf_counter())
        usage = Usage()
        status, error = "complete", None
        try:
            await announced.wait()
            await self._publish(
                user_id,
                chat_id,
                "typing_indicator",
                {
                    "user_id": "assistant",
                    "is_typing": True,
                    "typing_text": "The assistant is typing…",
                    "message_id": reply.id,
                },
            )
            async with asyncio.timeout(self.settings.reply_timeout_seconds):
                await self._stream(user_id, chat_id, reply.id, provider, prompt, usage, progress)
        except asyncio.CancelledError:
            running = self._running.get(reply.id)
            if running is not None and running.stop_reason == "cancelled":
                status = "cancelled"
            else:
                status, error = (
                    "failed",
                    (INTERRUPTED, "the reply was cut off: the service stopped while generating it"),
                )
        except TimeoutError:
            status, error = (
                "failed",
                (
                    "PROVIDER_TIMEOUT",
                    f"the reply took longer than {self.settings.reply_timeout_seconds:g} s",
                ),
            )
        except ProviderError as exc:
            status, error = "failed", (exc.code, exc.message)
        except Exception:
            log.exception("reply failed", message_id=reply.id)
            status, error = "failed", ("PROVIDER_ERROR", "the reply could not be generated")
        running = self._running.get(reply.id)
        if running is not None:
            running.finishing = True
        await self._finish(user_id, chat_id, reply.id, provider, progress, usage, status, error)

    async def _stream(
        self,
        user_id: str,
        chat_id: str,
        reply_id: str,
        provider: Provider,
        prompt: Prompt,
        usage: Usage,
        progress: _Progress,
    ) -> None:
        """Publish each piece once the next one has come: the last piece waits for the
        reply's end, which publishes it with `is_complete` (no empty chunk after the text)."""
        loop = asyncio.get_running_loop()
        flush_every = self.settings.reply_flush_ms / 1000
        last_saved, unsaved = loop.time(), 0
        async for piece in provider.stream(prompt, usage):
            if not piece:
                continue
            if progress.pieces:
                await self._publish_chunks(
                    user_id, chat_id, reply_id, progress, len(progress.pieces), is_complete=False
                )
            progress.pieces.append(piece)
            if progress.first_chunk_at is None:
                progress.first_chunk_at = time.perf_counter()
                REPLY_FIRST_CHUNK.observe(progress.first_chunk_at - progress.started)
            unsaved += 1
            if (
                unsaved >= self.settings.reply_flush_chunks
                or loop.time() - last_saved >= flush_every
            ):
                await self._save_partial(user_id, reply_id, progress.text)
                last_saved, unsaved = loop.time(), 0

    async def _publish_chunks(
        self,
        user_id: str,
        chat_id: str,
        reply_id: str,
        progress: _Progress,
        upto: int,
        *,
        is_complete: bool,
        forget_state: bool = False,
    ) -> None:
        """Publish the pieces not published yet, below `upto`, as one chunk whose index is
        the first of them (0-based), and keep the text so far and that index in Redis for
        resumes (or, with `forget_state`, drop them). A publish once started is finished
        even if the reply is cancelled meanwhile: the final chunk must not reuse its index."""
        index, text = progress.published, "".join(progress.pieces[progress.published : upto])
        text_key, index_key = self._state_keys(user_id, reply_id)

        def remember(pipe: Pipeline) -> None:
            if forget_state:
                pipe.delete(text_key, index_key)
                return
            pipe.append(text_key, text)
            pipe.set(index_key, index, ex=LIVE_STATE_TTL)
            if index == 0:
                pipe.expire(text_key, LIVE_STATE_TTL)

        publishing = asyncio.ensure_future(
            self.hub.publish(
                user_id,
                chat_id,
                LiveEvent.of(
                    "bot_response_chunk",
                    {
                        "message_id": reply_id,
                        "chunk": text,
                        "chunk_index": index,
                        "is_complete": is_complete,
                    },
                ),
                along=remember,
            )
        )
        progress.published = max(upto, index + 1)
        try:
            await asyncio.shield(publishing)
        finally:
            if not publishing.done():
                with contextlib.suppress(Exception):
                    await publishing

    async def _save_partial(self, user_id: str, reply_id: str, text: str) -> None:
        try:
            async with self.uow() as uow:
                await MessageRepository(uow.session).save_partial(
                    user_id, reply_id, text, self.clock()
                )
                await uow.commit()
        except Exception as exc:  # the reply goes on; the completion saves everything
            log.warning("partial reply not saved", message_id=reply_id, error=repr(exc))

    async def _finish(
        self,
        user_id: str,
        chat_id: str,
        reply_id: str,
        provider: Provider,
        progress: _Progress,
        usage: Usage,
        status: str,
        error: tuple[str, str] | None,
    ) -> None:
        """Store the reply's end as one change, then tell every connection."""
        now = self.clock()
        elapsed = time.perf_counter() - progress.started
        meta: dict[str, Any] = {
            "provider": provider.name,
            "generation_ms": round(elapsed * 1000),
            "chunks": len(progress.pieces),
        }
        if progress.first_chunk_at is not None:
            meta["time_to_first_chunk_ms"] = round(
                (progress.first_chunk_at - progress.started) * 1000
            )
        meta.update({k: v for k, v in usage.extra.items() if v is not None})
        if error is not None:
            meta["error_code"], meta["error_message"] = error
        out: MessageOut | None = None
        stored = False
        with contextlib.suppress(Exception):
            async for attempt in retrying(
                attempts=STORE_END_ATTEMPTS,
                first=0.5,
                warn="reply end not stored yet",
                message_id=reply_id,
            ):
                with attempt:
                    out = await self._store_end(
                        user_id, chat_id, reply_id, progress.text, status, usage, meta, now
                    )
                    stored = True
        if not stored:  # its text stays in Redis: the sweep stores it with the failed row
            log.error("reply end not stored: left to the sweep", message_id=reply_id)
            error = (
                "STORAGE_UNAVAILABLE",
                "the reply could not be saved now: it will be "
                "kept, marked failed, when storage is back",
            )
        await self.cache.forget_chat(user_id, chat_id)
        # the last piece carries is_complete; a reply without any text still ends with one
        # (empty) chunk. Stored: its resume state goes; not stored: it keeps the whole text
        # for the sweep
        await self._publish_chunks(
            user_id,
            chat_id,
            reply_id,
            progress,
            len(progress.pieces),
            is_complete=True,
            forget_state=stored,
        )
        if error is not None:
            await self._publish(
                user_id,
                chat_id,
                "error",
                {"error_code": error[0], "message": error[1], "message_id": reply_id},
            )
        if out is not None:
            await self._publish(
                user_id, chat_id, "message_complete", {"message": out.model_dump(mode="json")}
            )
        await self._publish(
            user_id,
            chat_id,
            "typing_indicator",
            {
                "user_id": "assistant",
                "is_typing": False,
                "typing_text": None,
                "message_id": reply_id,
            },
        )
        MESSAGES_SENT.labels("assistant").inc()
        REPLIES_FINISHED.labels(status).inc()
        REPLY_DURATION.observe(elapsed)

    async def _store_end(
        self,
        user_id: str,
        chat_id: str,
        reply_id: str,
        text: str,
        status: str,
        usage: Usage,
        meta: dict[str, Any],
        now: datetime,
    ) -> MessageOut | None:
        async with self.uow() as uow:
            row = await MessageRepository(uow.session).get(
                user_id, chat_id, reply_id, for_update=True
            )
            if row is None:  # deleted while it streamed
                return None
            row.content, row.status = text, status
            row.prompt_tokens, row.completion_tokens = usage.prompt_tokens, usage.completion_tokens
            row.meta = {**row.meta, **meta}
            await changes.message_changed(uow, row, now)
            tokens = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
            conversation = await ConversationRepository(uow.session).get(
                user_id, chat_id, for_update=True
            )
            if conversation is not None and tokens:
                conversation.total_tokens += tokens
                await changes.conversation_changed(uow, conversation, now)
            await uow.commit()
            return MessageOut.of(row)

    # -- cancelling, resuming, stopping ----------------------------------------------------

    async def cancel(self, user_id: str, message_id: str) -> None:
        """Stop generating `message_id` (on whichever replica runs it); its partial text
        is kept with status `cancelled`."""
        if not self._cancel_here(user_id, message_id, "cancelled"):
            await self.hub.control({"op": "cancel", "user_id": user_id, "message_id": message_id})

    async def on_control(self, payload: dict[str, Any]) -> None:
        """A message from another replica (LiveHub's control channel)."""
        if payload.get("op") == "cancel":
            self._cancel_here(
                str(payload.get("user_id")), str(payload.get("message_id")), "cancelled"
            )

    def _cancel_here(self, user_id: str, message_id: str, reason: str) -> bool:
        running = self._running.get(message_id)
        if running is None or running.user_id != user_id:
            return False
        if running.finishing:
            return True  # it is ending already
        running.stop_reason = reason
        running.task.cancel()
        return True

    def generating(self, message_id: str) -> bool:
        """Whether this process is still generating (or finishing) `message_id`."""
        return message_id in self._running

    async def live_text(self, user_id: str, message_id: str) -> tuple[str, int] | None:
        """What a reply being generated has so far, and its last chunk index (for resume)."""
        text_key, index_key = self._state_keys(user_id, message_id)
        try:
            text, index = await self.redis.mget(text_key, index_key)
        except (RedisError, OSError):
            return None
        if index is None:
            return None
        text = text or b""
        return (text.decode() if isinstance(text, bytes) else str(text)), int(index)

    def _state_keys(self, user_id: str, message_id: str) -> tuple[str, str]:
        base = f"{self.prefix}live-reply:{user_id}:{message_id}"
        return f"{base}:text", f"{base}:index"

    async def _publish(self, user_id: str, chat_id: str, type_: str, data: dict[str, Any]) -> None:
        await self.hub.publish(user_id, chat_id, LiveEvent.of(type_, data))

    async def sweep_interrupted(self) -> int:
        """Mark replies a crash left `streaming` as failed (INTERRUPTED), text kept."""
        now = self.clock()
        stale = now - timedelta(seconds=self.settings.reply_stale_seconds)
        touched: set[tuple[str, str]] = set()
        marked = 0
        async with self.uow() as uow:
            for row in await MessageRepository(uow.session).stale_streaming(stale, limit=500):
                if row.id in self._running:
                    continue
                marked += 1
                live = await self.live_text(row.user_id, row.id)
                if live is not None and len(live[0]) > len(row.content):
                    row.content = live[0]  # generated after its last save
                row.status = "failed"
                row.meta = {
                    **row.meta,
                    "error_code": INTERRUPTED,
                    "error_message": "the reply was cut off before it completed",
                }
                await changes.message_changed(uow, row, now)
                touched.add((row.user_id, row.conversation_id))
            await uow.commit()
        for user_id, chat_id in touched:
            await self.cache.forget_chat(user_id, chat_id)
        if marked:
            log.info("interrupted replies marked failed", replies=marked)
        return marked

    async def run_sweeps(self) -> None:
        """Sweep now and then for as long as the process runs."""
        interval = max(1.0, min(60.0, self.settings.reply_stale_seconds / 2))
        while True:
            try:
                await self.sweep_interrupted()
            except Exception:
                log.exception("reply sweep failed")
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        """On shutdown: end every reply this process generates as interrupted (text kept)."""
        running = list(self._running.values())
        for item in running:
            if not item.finishing:
                item.stop_reason = "interrupted"
                item.task.cancel()
        if running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(r.task for r in running), return_exceptions=True), 10
                )
