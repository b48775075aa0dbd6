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
        description="an option's `id` from this attempt's form (single/weighted/likert), a "
                    "list of them (multiple), or null. Ids are the options' places in this "
                    "attempt's order (1..n), not database ids")
    seq: int = Field(description="per-attempt sequence number from the page; higher wins")
    flagged: bool = Field(default=False, description='"ragu-ragu" flag')


class AnswerSaved(BaseModel):
    stored_seq: int = Field(description="the seq now stored for this item")
    accepted: bool = Field(description="false when an equal or newer save was already stored")
    remaining_s: int | None
    state: str


class OptionRead(BaseModel):
    id: int = Field(description="the option's place in this attempt's order (1..n); valid "
                                "only in this attempt, it says nothing of the author's order")
    content: str


class ItemRead(BaseModel):
    item_id: int
    position: int
    section: int
    kind: str
    stem: str | None = Field(description="HTML; null while the item's section is not open")
    options: list[OptionRead]
    passage: str | None = Field(default=None, description="HTML of the passage (story, table, "
                                "case) the item is asked about, the same for each of its items; "
                                "null when there is none or the section is not open")
    passage_title: str | None = None
    response: Any = Field(default=None, description="the stored answer, as option `id`s of "
                                                    "this form")
    seq: int = 0
    flagged: bool = False
    min_choices: int | None = Field(default=None, description="multiple: the fewest options "
                                    "that make an answer (fewer is saved but counts as not yet "
                                    "answered)")
    max_choices: int | None = Field(default=None, description="multiple: the most options that "
                                    "may be chosen; more is refused with 422 "
                                    "`takerscreen.error_max_choices`")


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
    test_remaining_s: int | None = Field(default=None, description="the whole test's seconds "
                                         "left, when the test has its own limit")


class AttemptStatus(BaseModel):
    state: str
    current_section: int
    remaining_s: int | None
    server_time: datetime
    test_remaining_s: int | None = Field(default=None, description="the whole test's seconds "
                                         "left, when the test has its own limit")
