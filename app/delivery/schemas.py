"""JSON shapes of the test-taker API (stable: load tools and kiosks use it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class TakerLoginCreate(BaseModel):
    nip: str = Field(max_length=40, description="18-digit NIP (spaces allowed)")
    token: str = Field(max_length=40, description="login token from the card (dashes allowed)")
    workstation: str | None = Field(default=None, max_length=64,
                                    description="seat identifier; default: the client address")


class TakerLoginRead(BaseModel):
    attempt_id: int
    access_token: str
    state: str
    session_code: str


class AnswerUpdate(BaseModel):
    response: int | list[int] | None = Field(
        description="option id (single/weighted/likert), list of option ids (multiple), or null")
    seq: int = Field(description="per-attempt sequence number from the page; higher wins")
    flagged: bool = Field(default=False, description='"ragu-ragu" flag')


class AnswerSaved(BaseModel):
    stored_seq: int = Field(description="the seq now stored for this item")
    accepted: bool = Field(description="false when an equal or newer save was already stored")
    remaining_s: int | None
    state: str


class OptionRead(BaseModel):
    id: int
    content: str


class ItemRead(BaseModel):
    item_id: int
    position: int
    section: int
    kind: str
    stem: str | None = Field(description="HTML; null while the item's section is not open")
    options: list[OptionRead]
    response: Any = None
    seq: int = 0
    flagged: bool = False


class SectionRead(BaseModel):
    index: int
    title: str
    instructions: str
    time_limit_s: int | None
    state: str = Field(description="open, closed or pending")
    remaining_s: int | None


class AttemptRead(BaseModel):
    attempt_id: int
    state: str
    current_section: int
    remaining_s: int | None = Field(description="seconds left as the server counts them")
    server_time: datetime
    last_seq: int
    sections: list[SectionRead]
    items: list[ItemRead]


class AttemptStatus(BaseModel):
    state: str
    current_section: int
    remaining_s: int | None
    server_time: datetime
