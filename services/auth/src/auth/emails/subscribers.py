"""The embedded default's mail sink: log each requested email instead of sending it
(`AUTH_MAIL_SINK=log`). A real mail provider would consume auth.email.v1 the same way."""

from __future__ import annotations

import structlog

from contracts.envelope import Envelope, EventPayload
from contracts.events.auth import EmailRequested
from servicekit.logging import unredacted
from servicekit.uow import UnitOfWork

log = structlog.get_logger(__name__)


async def log_email(uow: UnitOfWork, envelope: Envelope[EventPayload]) -> None:
    """Write the link to the log, where a developer running `parley dev` can click it (this
    line is the mail itself, so its link is kept out of the log's credential redaction)."""
    email = envelope.payload
    if isinstance(email, EmailRequested):
        log.info(
            "email",
            kind=email.kind,
            to=email.to,
            link=email.link,
            expires_at=email.expires_at.isoformat(),
            **unredacted("link"),
        )
