"""What auth builds once per process and every entrypoint uses. A leaf: it imports the parts
it holds, never an endpoint or `auth.main`, so endpoints can depend on it without a cycle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from auth.accounts.service import Accounts
from auth.emails.service import EmailLinks
from auth.settings import Settings
from auth.tokens.keys import KeyRing
from auth.tokens.service import Tokens
from servicekit.auth import TokenVerifier
from servicekit.clock import utc_now
from servicekit.runtime import ServiceRuntime
from servicekit.uow import UnitOfWork


@dataclass
class Components:
    """What auth's endpoints use, built once per process (see auth.main)."""

    settings: Settings
    runtime: ServiceRuntime
    keys: KeyRing
    verifier: TokenVerifier
    accounts: Accounts
    tokens: Tokens
    email_links: EmailLinks
    clock: Callable[[], datetime] = field(default=utc_now)

    def uow(self) -> UnitOfWork:
        return self.runtime.uow()

    def reader(self) -> UnitOfWork:
        """For a read that needs no snapshot: no BEGIN/ROLLBACK (servicekit.uow)."""
        return self.runtime.reader()
