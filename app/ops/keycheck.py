"""The secret key can never split: the database records a fingerprint of its key.

Participant tokens are stored as HMACs and encrypted under the secret key, and staff cookies
are signed with it. A server or a CLI command that silently used another key (a second key
generated in another working directory, a key file not restored with the database) would
answer every login card with "wrong NIP or token". So the database keeps the fingerprint of the
key it was created with (ServerState "secret_fingerprint"), and :func:`ensure` refuses a
missing or different key before anything runs: `cact serve`, create_app and every CLI command
that opens the database go through it.

A new key is generated only for an empty database (no accounts, participants, roster entries or
attempts). A database from before this check existed that has data but no fingerprint adopts
the key that is present (and is refused when there is none).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.ops.state import get_value, set_value
from app.settings import Settings, SettingsError, load_or_create_secret, read_secret

STATE_NAME = "secret_fingerprint"


class KeyMismatch(SettingsError):
    """The key at hand is missing or is not the database's key (exit 78, EX_CONFIG)."""


def fingerprint(secret: str) -> str:
    """A short, non-reversible name of the key: HMAC-SHA256(key, fixed label), 16 hex digits."""
    return hmac.new(secret.encode(), b"cact-secret-fingerprint", hashlib.sha256).hexdigest()[:16]


def stored_fingerprint(db: Session) -> str | None:
    """The fingerprint the database recorded, or None before any was recorded."""
    value = get_value(db, STATE_NAME)
    if isinstance(value, dict):
        return value.get("fingerprint")
    return None


def database_is_empty(db: Session) -> bool:
    """True when nothing depends on a key yet: no accounts, participants, roster entries or
    attempts (banks and blueprints hold no secret, so they do not count)."""
    from app.auth.models import User
    from app.delivery.models import Attempt
    from app.sessions.models import Participant, RosterEntry

    return not any(db.scalar(select(exists().select_from(model)))
                   for model in (User, Participant, RosterEntry, Attempt))


def _fix(settings: Settings) -> str:
    return (f"restore the key file {settings.secret_file} from the backup archive (`cact restore` "
            "puts the database and its key back together), or set CACT_SECRET_KEY to the key "
            "this database was made with")


def _where(settings: Settings) -> str:
    return "CACT_SECRET_KEY" if settings.secret_key else f"the key file {settings.secret_file}"


def problem(db: Session, *, secret: str) -> str | None:
    """What is wrong with using ``secret`` on this database, or None when it is the key the
    database recorded (or none is recorded yet). Used by /healthz."""
    stored = stored_fingerprint(db)
    if stored is None or hmac.compare_digest(stored, fingerprint(secret)):
        return None
    return (f"the secret key in use (fingerprint {fingerprint(secret)}) is not the key this "
            f"database was made with (fingerprint {stored}): participant tokens and logins "
            "would all fail")


def ensure(database, settings: Settings, *, now: datetime | None = None) -> str:
    """The secret key to use with ``database``, after checking it against the database.

    - CACT_SECRET_KEY or the key file must match the recorded fingerprint;
    - a missing key file is refused when the database has a fingerprint or data (a new key is
      generated only for an empty database);
    - the first check on a database without a fingerprint records the key's.

    Raises :class:`KeyMismatch` (a SettingsError: the CLI exits 78) with the key file, what
    happened and the fix; an unreadable key file is a SettingsError naming the file and user.
    """
    now = now or datetime.now(UTC)
    secret = settings.secret_key or read_secret(settings.secret_file)
    with database.transaction(write=False) as db:
        stored = stored_fingerprint(db)
        empty = stored is None and database_is_empty(db)
    if stored is not None:
        if secret is None:
            raise KeyMismatch(
                f"Kunci rahasia hilang / secret key missing: {settings.secret_file} does not "
                f"exist, and this database was made with the key of fingerprint {stored}. A new "
                f"key would make every participant token invalid. Fix: {_fix(settings)}."
            )
        if not hmac.compare_digest(stored, fingerprint(secret)):
            raise KeyMismatch(
                f"Kunci rahasia salah / wrong secret key: {_where(settings)} (fingerprint "
                f"{fingerprint(secret)}) is not the key this database was made with "
                f"(fingerprint {stored}); participant tokens and logins would all fail. "
                f"Fix: {_fix(settings)}."
            )
        return secret
    if secret is None:
        if not empty:
            raise KeyMismatch(
                f"Kunci rahasia hilang / secret key missing: {settings.secret_file} does not "
                "exist and this database already has accounts or participants, whose tokens "
                f"need the key they were made with. Fix: {_fix(settings)}."
            )
        secret = load_or_create_secret(settings.data_dir)
    with database.transaction() as db:
        # Another worker may have recorded it meanwhile: only ever the same key (O_EXCL file).
        again = stored_fingerprint(db)
        if again is None:
            set_value(db, STATE_NAME, {"fingerprint": fingerprint(secret),
                                       "source": _where(settings)}, now=now)
        elif not hmac.compare_digest(again, fingerprint(secret)):
            raise KeyMismatch(
                f"Kunci rahasia salah / wrong secret key: {_where(settings)} is not the key "
                f"this database was just given (fingerprint {again}). Fix: {_fix(settings)}."
            )
    return secret
