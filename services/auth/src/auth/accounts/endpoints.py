"""Accounts over HTTP: turn the request into a use case call and own its transaction."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from auth.accounts.schemas import (
    AnonymousIn,
    AuthOut,
    DeletedOut,
    GrantAdminIn,
    LoginIn,
    RegisterIn,
    UpdateMeIn,
    UpgradeIn,
    UserOnly,
    UserOut,
)
from auth.api import Auth, Ok, client_ip, ok
from auth.tokens.verification import SignedIn
from servicekit.auth import InternalOnly

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])
# for operators' tools (`parley grant-admin`) and other services: the service credential
internal_router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[InternalOnly])


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterIn, request: Request, auth: Auth) -> Ok[AuthOut]:
    async with auth.uow() as uow:
        result = await auth.accounts.register(
            uow,
            email=body.email,
            password=body.password,
            name=body.name,
            device_info=body.device_info,
            ip=client_ip(request),
            now=auth.clock(),
        )
        await uow.commit()
    return ok(result)


@router.post("/login")
async def login(body: LoginIn, request: Request, auth: Auth) -> Ok[AuthOut]:
    ip, now = client_ip(request), auth.clock()
    async with auth.uow() as uow:
        found = await auth.accounts.credentials(uow, email=body.email, ip=ip, now=now)
    verified = await auth.accounts.check_password(found, body.password, ip=ip, now=now)
    async with auth.uow() as uow:
        result = await auth.accounts.sign_in(
            uow, verified, device_info=body.device_info, ip=ip, now=now
        )
        await uow.commit()
    return ok(result)


@router.post("/anonymous", status_code=status.HTTP_201_CREATED)
async def anonymous(request: Request, auth: Auth, body: AnonymousIn | None = None) -> Ok[AuthOut]:
    async with auth.uow() as uow:
        result = await auth.accounts.create_anonymous(
            uow,
            device_info=body.device_info if body else {},
            ip=client_ip(request),
            now=auth.clock(),
        )
        await uow.commit()
    return ok(result)


@router.post("/upgrade")
async def upgrade(body: UpgradeIn, caller: SignedIn, auth: Auth) -> Ok[UserOnly]:
    async with auth.uow() as uow:
        user = await auth.accounts.upgrade(
            uow,
            caller.user_id,
            email=body.email,
            password=body.password,
            name=body.name,
            now=auth.clock(),
        )
        await uow.commit()
    return ok(UserOnly(user=user))


@router.get("/me")
async def me(caller: SignedIn, auth: Auth) -> Ok[UserOut]:
    async with auth.uow() as uow:
        return ok(await auth.accounts.me(uow, caller.user_id))


@router.patch("/me")
async def update_me(body: UpdateMeIn, caller: SignedIn, auth: Auth) -> Ok[UserOut]:
    async with auth.uow() as uow:
        user = await auth.accounts.rename(uow, caller.user_id, body.name, auth.clock())
        await uow.commit()
    return ok(user)


@router.delete("/me")
async def delete_me(caller: SignedIn, auth: Auth) -> Ok[DeletedOut]:
    async with auth.uow() as uow:
        deleted = await auth.accounts.delete(uow, caller.user_id, auth.clock())
        await uow.commit()
    return ok(deleted)


@internal_router.post("/admins")
async def grant_admin(body: GrantAdminIn, auth: Auth) -> Ok[UserOnly]:
    async with auth.uow() as uow:
        user = await auth.accounts.grant_admin(uow, body.email, auth.clock())
        await uow.commit()
    return ok(UserOnly(user=user))
