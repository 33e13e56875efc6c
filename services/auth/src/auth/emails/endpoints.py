"""Email verification and password reset over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from auth.accounts.schemas import UserOnly
from auth.api import Auth, Ok, client_ip, ok
from auth.emails.schemas import (
    AcceptedOut,
    ConfirmEmailIn,
    ForgotPasswordIn,
    LinkSentOut,
    PasswordResetOut,
    ResetPasswordIn,
)
from auth.tokens.verification import SignedIn

router = APIRouter(prefix="/api/v1/auth", tags=["email links"])


@router.post("/verify-email/request", status_code=status.HTTP_202_ACCEPTED)
async def request_verification(caller: SignedIn, auth: Auth) -> Ok[LinkSentOut]:
    async with auth.uow() as uow:
        sent = await auth.email_links.request_verification(uow, caller.user_id, auth.clock())
        await uow.commit()
    return ok(sent)


@router.post("/verify-email/confirm")
async def confirm_verification(body: ConfirmEmailIn, auth: Auth) -> Ok[UserOnly]:
    async with auth.uow() as uow:
        user = await auth.email_links.confirm_verification(uow, body.token, auth.clock())
        await uow.commit()
    return ok(user)


@router.post("/password/forgot", status_code=status.HTTP_202_ACCEPTED)
async def forgot_password(body: ForgotPasswordIn, request: Request, auth: Auth) -> Ok[AcceptedOut]:
    async with auth.uow() as uow:
        accepted = await auth.email_links.forgot_password(
            uow, body.email, client_ip(request), auth.clock()
        )
        await uow.commit()
    return ok(accepted)


@router.post("/password/reset")
async def reset_password(body: ResetPasswordIn, auth: Auth) -> Ok[PasswordResetOut]:
    async with auth.uow() as uow:
        reset = await auth.email_links.reset_password(
            uow, body.token, body.new_password, auth.clock()
        )
        await uow.commit()
    return ok(reset)
