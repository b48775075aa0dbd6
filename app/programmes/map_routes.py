"""Admin pages of assessment programmes (see docs/architecture.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
