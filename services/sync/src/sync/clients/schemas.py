"""What the clients API answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from servicekit.pagination import Pagination


class ClientOut(BaseModel):
    client_id: str
    last_mid: int
    last_seen: datetime
    created_at: datetime


class ClientPage(BaseModel):
    clients: list[ClientOut]
    pagination: Pagination
