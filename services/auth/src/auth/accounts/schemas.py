"""Accounts in and out. Inputs reject unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from auth.accounts.domain import clean_email
from auth.preferences.domain import PreferenceValues
from auth.tokens.schemas import TokensOut
from servicekit.validation import JsonObject, Text, storable_text

Email = Annotated[Text, AfterValidator(clean_email)]
Password = Annotated[Text, Field(min_length=8, max_length=1024)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(storable_text),
]
DeviceInfo = Annotated[JsonObject, Field(max_length=32)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Input):
    email: Email
    password: Password
    name: Name
    device_info: DeviceInfo = Field(default_factory=dict)


class LoginIn(Input):
    email: Annotated[Text, Field(min_length=1, max_length=1024)]
    password: Annotated[Text, Field(min_length=1, max_length=1024)]
    device_info: DeviceInfo = Field(default_factory=dict)


class AnonymousIn(Input):
    device_info: DeviceInfo = Field(default_factory=dict)


class UpgradeIn(Input):
    email: Email
    password: Password
    name: Name


class UpdateMeIn(Input):
    name: Name


class GrantAdminIn(Input):
    email: Email


class UserOut(BaseModel):
    id: str
    email: str | None
    name: str | None
    role: str
    is_anonymous: bool
    email_verified: bool
    created_at: datetime
    last_login_at: datetime | None
    preferences: PreferenceValues


class AuthOut(BaseModel):
    user: UserOut
    tokens: TokensOut


class UserOnly(BaseModel):
    user: UserOut


class DeletedOut(BaseModel):
    user_id: str
    deleted_at: datetime
