"""Configuration from the environment (prefix ``CACT_``) and an optional ``.env`` file.

Every value has a safe default except the secret key, which is generated once into the data
directory (never a default written in code), so two installations never share a secret.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FILE_NAME = "secret_key"
MIN_SECRET_LENGTH = 32


class SettingsError(RuntimeError):
    """Configuration that cannot work; the message says which variable and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CACT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=Path("var"), description="Where the SQLite file and secret live")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite in data_dir")
    secret_key: str = Field(default="", description="Empty = generated into data_dir/secret_key")
    language: Literal["id", "en"] = "id"
    # Times on pages are shown in the agency's zone (WIB by default; WITA/WIT elsewhere).
    timezone: str = "Asia/Jakarta"
    # Cookie "Secure" flag: auto = only when the request arrived over HTTPS.
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_absolute_hours: int = Field(default=12, ge=1, le=7 * 24)
    # argon2id cost; the defaults are above OWASP's floor (19 MiB, t=2, p=1).
    argon2_time_cost: int = Field(default=3, ge=2)
    argon2_memory_kib: int = Field(default=65536, ge=19456)
    argon2_parallelism: int = Field(default=1, ge=1, le=8)
    sqlite_busy_timeout_ms: int = Field(default=10000, ge=100)
    # Saves that were in flight when a deadline passed are still accepted this long after it.
    save_grace_s: int = Field(default=15, ge=0, le=300)
    # How often each worker closes attempts whose time ran out (takers whose browser is gone).
    sweep_interval_s: int = Field(default=10, ge=1, le=600)
    # Addresses whose X-Forwarded-* headers are trusted (the nginx in front of the workers).
    forwarded_allow_ips: str = "127.0.0.1"
    # Automatic backups while a session is open (0 = off), to a second disk or USB stick.
    backup_interval_min: int = Field(default=0, ge=0, le=24 * 60)
    backup_dir: Path | None = None
    backup_keep: int = Field(default=12, ge=1, le=1000)
    # The heartbeat that lets a restarted server credit an outage to the takers.
    heartbeat_interval_s: int = Field(default=2, ge=1, le=60)
    outage_threshold_s: int = Field(default=15, ge=5, le=3600)
    # /healthz fails (and staff see an alert) below this much free space in the data directory.
    disk_min_free_mb: int = Field(default=500, ge=0)
    # Addresses allowed to read /metrics without a staff login (Prometheus on the server itself).
    metrics_allow_ips: str = "127.0.0.1,::1"

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                "must start with sqlite:/// or postgresql+psycopg:// "
                f"(got {value.split(':', 1)[0]!r})"
            )
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # psycopg 3 is the only PostgreSQL driver installed; select it from the URL alone.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use e.g. Asia/Jakarta, Asia/Makassar") from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        if value and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"must be at least {MIN_SECRET_LENGTH} characters; leave CACT_SECRET_KEY unset "
                "to have one generated into the data directory"
            )
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'cact.sqlite3').as_posix()}"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def resolved_secret(self) -> str:
        """The secret key: from the environment, or read/generated in the data directory."""
        if self.secret_key:
            return self.secret_key
        return load_or_create_secret(self.data_dir)


def load_or_create_secret(data_dir: Path) -> str:
    """Read ``data_dir/secret_key``, creating it atomically (mode 0600) on first use.

    O_EXCL makes two workers starting together agree on one secret instead of each writing its own.
    """
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="ascii").strip()
        if len(value) < MIN_SECRET_LENGTH:
            raise SettingsError(
                f"{path} holds a secret shorter than {MIN_SECRET_LENGTH} characters; "
                "restore it from backup or delete it to generate a new one "
                "(a new secret invalidates printed participant tokens)"
            ) from None
        return value
    value = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(value + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return value


def describe_validation_error(exc: ValidationError) -> str:
    lines = ["Konfigurasi tidak valid / invalid configuration:"]
    for err in exc.errors():
        name = "CACT_" + "_".join(str(p) for p in err["loc"]).upper()
        lines.append(f"  {name}: {err['msg']}")
    return "\n".join(lines)


@lru_cache
def get_settings() -> Settings:
    """Settings for this process; a bad value raises :class:`SettingsError` with a clear message."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
