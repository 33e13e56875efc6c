"""Tokens and sessions in and out."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from servicekit.validation import Text


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    expires_in: int = Field(description="seconds until the access token expires")
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Text = Field(min_length=1, max_length=512)


class TokensOnly(BaseModel):
    tokens: TokensOut


class SessionOut(BaseModel):
    id: str
    device_info: dict[str, Any]
    created_at: datetime
    last_used_at: datetime
    last_ip: str | None
    current: bool


class SessionList(BaseModel):
    items: list[SessionOut]


class RevokedOut(BaseModel):
    revoked: int


class RotatedOut(BaseModel):
    kid: str
