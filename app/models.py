"""Imports every domain's tables so ``Base.metadata`` is complete (Alembic, tests)."""

from app.assembly.models import Blueprint, BlueprintBankVersion
from app.audit import AuditEvent
from app.auth.models import LoginThrottle, Role, User, WebSession
from app.bank.models import BankMedia, BankVersion, Item, ItemBank, ItemOption, KeyCorrection
from app.db import Base
from app.delivery.models import Answer, AnswerEvent, Attempt, AttemptItem, AttemptSection
from app.ops.models import ServerState
from app.proctoring.models import Incident
from app.programmes.models import KeyPosition, Programme, ProgrammeChoice
from app.scoring.models import (
    ConstructScore,
    JobStandard,
    PerformanceRating,
    Result,
    ValidityDecision,
)
from app.sessions.models import Participant, ProctorAssignment, RosterEntry, TestSession

__all__ = [
    "Answer", "AnswerEvent", "Attempt", "AttemptItem", "AttemptSection", "AuditEvent",
    "BankMedia", "BankVersion", "Base", "Blueprint", "BlueprintBankVersion", "ConstructScore",
    "Incident", "Item", "ItemBank", "ItemOption", "JobStandard", "KeyCorrection", "KeyPosition",
    "LoginThrottle", "Participant", "PerformanceRating", "ProctorAssignment", "Programme",
    "ProgrammeChoice", "Result", "Role",
    "RosterEntry", "ServerState", "TestSession", "User", "ValidityDecision", "WebSession",
]
