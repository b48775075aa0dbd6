"""A key correction, the admin's action: change the key or weights of one item (also in a frozen
version: ``app.bank.service.change_key`` records who, when, why, the old and the new key) and
rescore, in the same transaction, every handed-in attempt whose form holds the item.

It lives in scoring because scoring reads the bank, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from app.bank.models import Item, KeyCorrection
from app.bank.service import change_key
from app.scoring.service import SessionScoring, rescore_item


@dataclass(frozen=True)
class CorrectionDone:
    """A key correction and what its rescore changed (the numbers of its audit row)."""

    correction: KeyCorrection
    rescore: SessionScoring


def correct_key_and_rescore(db: Session, *, item: Item, key: str | None = None,
                            weights: dict[str, Decimal] | None = None, reason: str, actor: str,
                            actor_id: int | None, now: datetime) -> CorrectionDone:
    """Correct the key (single) or the weights (other kinds) of one item and rescore the results
    scored with the old key; both audited. Raises ValueError for a key or weights that cannot
    be set (nothing is changed then)."""
    correction = change_key(db, item=item, key=key, weights=weights, reason=reason,
                            actor=actor, actor_id=actor_id, now=now)
    return CorrectionDone(correction, rescore_item(db, item=item, reason=reason, actor=actor,
                                                   now=now))


def correct_key(db: Session, *, item: Item, key: str | None = None,
                weights: dict[str, Decimal] | None = None, reason: str, actor: str,
                actor_id: int | None, now: datetime) -> KeyCorrection:
    """:func:`correct_key_and_rescore` for a caller that needs only the correction."""
    return correct_key_and_rescore(db, item=item, key=key, weights=weights, reason=reason,
                                   actor=actor, actor_id=actor_id, now=now).correction
