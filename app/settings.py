"""Configuration from the environment (prefix ``CACT_``) and one configuration file.

The file is found the same way whatever the working directory and user: ``CACT_CONFIG`` if set,
else ``/etc/cact/cact.env`` if present, else ``./.env`` (KEY=VALUE lines with ``CACT_*`` names).
Real environment variables override the file. A relative ``CACT_DATA_DIR`` (or
``CACT_BACKUP_DIR``) in the file is relative to the file's folder, so the server and every CLI
command find the same data directory.

Every value has a safe default except the secret key, which is generated once into the data
directory (never a default written in code, and only for an empty database: see
app/ops/keycheck.py), so two installations never share a secret.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SECRET_FILE_NAME = "secret_key"  # noqa: S105 - a file name, not a secret
MIN_SECRET_LENGTH = 32
# Where the installer writes the server's configuration (deploy/install.sh).
SYSTEM_CONFIG = Path("/etc/cact/cact.env")
LOCAL_CONFIG = Path(".env")
# Settings holding file system paths: relative values in a config file are relative to it.
PATH_SETTINGS = ("data_dir", "backup_dir")
# Exit code of a configuration a restart cannot fix (sysexits.h EX_CONFIG); the systemd unit
# has RestartPreventExitStatus=78 so it stops instead of crash-looping.
EX_CONFIG = 78


class SettingsError(RuntimeError):
    """Configuration that cannot work; the message says which variable and how to fix it."""


def current_user() -> str:
    """The name of the user this process runs as (for messages about file permissions)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def config_file_path() -> tuple[Path | None, str]:
    """The configuration file in use and why: (path, reason), path None when there is none.

    ``CACT_CONFIG`` if set (it must exist), else /etc/cact/cact.env if present, else ./.env
    if present.
    """
    chosen = os.environ.get("CACT_CONFIG", "").strip()
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise SettingsError(
                f"CACT_CONFIG={chosen}: no such file. Point CACT_CONFIG at the configuration "
                f"file (usually {SYSTEM_CONFIG}) or unset it."
            )
        return path.absolute(), "CACT_CONFIG"
    if SYSTEM_CONFIG.is_file():
        return SYSTEM_CONFIG, "system configuration"
    if LOCAL_CONFIG.is_file():
        return LOCAL_CONFIG.absolute(), "./.env in the current directory"
    return None, "none"


def read_config_file(path: Path) -> dict[str, str]:
    """The ``CACT_*`` KEY=VALUE lines of ``path`` (names upper-cased; comments, quotes and
    ``export`` handled as in a shell .env file)."""
    from dotenv import dotenv_values

    try:
        with path.open(encoding="utf-8") as stream:
            raw = dotenv_values(stream=stream)
    except PermissionError:
        raise SettingsError(
            f"cannot read the configuration file {path} as user {current_user()}: run the "
            "command as the service user (sudo -u cact cact ...) or let that user read the file"
        ) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                            "save it as UTF-8") from None
    return {key.upper(): (value or "") for key, value in raw.items()
            if key.upper().startswith("CACT_")}


def file_values(path: Path, fields: dict[str, FieldInfo]) -> dict[str, Any]:
    """Field values set by the config file at ``path``, relative paths resolved against it."""
    raw = read_config_file(path)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = "CACT_" + name.upper()
        if key not in raw:
            continue
        value: Any = raw[key]
        if name in PATH_SETTINGS and value:
            candidate = Path(value).expanduser()
            if not candidate.is_absolute():
                candidate = path.parent / candidate
            value = str(candidate)
        elif value == "" and field.default is None:
            value = None
        values[name] = value
    return values


class ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the configuration file chosen by :func:`config_file_path`."""

    def get_field_value(self, field: FieldInfo,  # noqa: ARG002 - the base class's signature
                        field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        path, _reason = config_file_path()
        if path is None:
            return {}
        return file_values(path, self.settings_cls.model_fields)


class Settings(BaseSettings):
    # The config file is read by ConfigFileSource (not pydantic's env_file, which only knows
    # one fixed, working-directory-relative name).
    model_config = SettingsConfigDict(env_prefix="CACT_", env_file=None, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env file is read
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - nor a secrets dir
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier wins: arguments, then real environment variables, then the config file.
        return init_settings, env_settings, ConfigFileSource(settings_cls)

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
    # SQLite's page cache per pooled connection (up to 20 are kept): memory for speed.
    sqlite_cache_kib: int = Field(default=2000, ge=64, le=1_000_000)
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
        if value.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the only PostgreSQL driver installed; select it from the URL alone.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use e.g. Asia/Jakarta, Asia/Makassar") from None
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
        # Absolute from the start: a later chdir (or a relative default) must not move it.
        self.data_dir = Path(os.path.abspath(self.data_dir))
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'cact.sqlite3').as_posix()}"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secret_file(self) -> Path:
        """Where the secret key lives when CACT_SECRET_KEY is not set."""
        return self.data_dir / SECRET_FILE_NAME

    def resolved_secret(self) -> str:
        """The secret key: CACT_SECRET_KEY, or the key file in the data directory.

        Never generates a key (a new key for a database with participants would silently
        invalidate every token): app/ops/keycheck.py generates it, for an empty database only.
        """
        if self.secret_key:
            return self.secret_key
        value = read_secret(self.secret_file)
        if value is None:
            raise SettingsError(
                f"the secret key file {self.secret_file} is missing. Restore it from the backup "
                "(`cact restore` puts it back), or set CACT_SECRET_KEY; a new key is made only "
                "for an empty database (any `cact` command on it does that)"
            )
        return value


def read_secret(path: Path) -> str | None:
    """The key in ``path``, or None when the file does not exist.

    An unreadable or truncated file is a :class:`SettingsError` naming the file and the fix.
    """
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise SettingsError(
            f"cannot read the secret key file {path} as user {current_user()}: run the command "
            "as the service user (sudo -u cact cact ...), or give that user the file "
            f"(chown cact: {path}; chmod 600 {path})"
        ) from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise SettingsError(f"{path} is not a secret key file ({exc}); restore it from the "
                            "backup or set CACT_SECRET_KEY") from None
    if len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(
            f"{path} holds a secret shorter than {MIN_SECRET_LENGTH} characters; "
            "restore it from backup or delete it to generate a new one "
            "(a new secret invalidates printed participant tokens)"
        )
    return value


def load_or_create_secret(data_dir: Path) -> str:
    """Read ``data_dir/secret_key``, creating it atomically (mode 0600) when missing.

    The key is written whole to a private temporary file and then hard-linked into place, which
    fails when the file exists: two processes starting together agree on one key, and neither
    can read a half-written one. Only app/ops/keycheck.py calls this, for an empty database.
    """
    path = data_dir / SECRET_FILE_NAME
    existing = read_secret(path)
    if existing is not None:
        return existing
    value = secrets.token_urlsafe(48)
    temporary = data_dir / f".{SECRET_FILE_NAME}.{os.getpid()}.tmp"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(value + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return read_secret(path) or load_or_create_secret(data_dir)
        dir_fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name survives a power cut
        finally:
            os.close(dir_fd)
    except PermissionError:
        raise SettingsError(
            f"cannot create the secret key file {path} as user {current_user()}: run the "
            "command as the service user (sudo -u cact cact ...) or let it write the folder"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
    return value


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad value, naming the variable and where it was set."""
    lines = ["Konfigurasi tidak valid / invalid configuration:"]
    try:
        path, _reason = config_file_path()
    except SettingsError:
        path = None
    for err in exc.errors():
        name = "CACT_" + "_".join(str(p) for p in err["loc"]).upper()
        if name in {k.upper() for k in os.environ}:
            where = " (environment variable)"
        elif path is not None and name in read_config_file(path):
            where = f" (in {path})"
        else:
            where = ""
        lines.append(f"  {name}{where}: {err['msg']}")
    return "\n".join(lines)


@lru_cache
def get_settings() -> Settings:
    """Settings for this process; a bad value raises :class:`SettingsError` with a clear message."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
