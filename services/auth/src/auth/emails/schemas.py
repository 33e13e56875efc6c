"""Email links in and out. Inputs reject unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from auth.accounts.schemas import Email, Input, Password
from servicekit.validation import Text

EmailTokenIn = Annotated[Text, Field(min_length=1, max_length=512)]


class ConfirmEmailIn(Input):
    token: EmailTokenIn


class ForgotPasswordIn(Input):
    email: Email


class ResetPasswordIn(Input):
    token: EmailTokenIn
    new_password: Password


class LinkSentOut(BaseModel):
    to: str
    expires_at: datetime


class AcceptedOut(BaseModel):
    """The same answer whether or not the email has an account."""

    accepted: Literal[True] = True
    message: str = "if an account uses this email, a reset link is on its way"


class PasswordResetOut(BaseModel):
    revoked_sessions: int = Field(description="sessions signed out by the reset")
