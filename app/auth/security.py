"""Password hashing (argon2id), random tokens, keyed digests and reversible token encryption."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken

# Participant login tokens avoid look-alike characters (0/O, 1/I/L) so a card read aloud or
# typed on an old keyboard is not mistyped: 31 symbols, 8 characters = 39.6 bits.
TOKEN_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # noqa: S105 - letters, not a secret
TOKEN_LENGTH = 8


@lru_cache(maxsize=8)
def password_hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def settings_hasher(settings: Any) -> PasswordHasher:
    """The hasher configured by CACT_ARGON2_* settings."""
    return password_hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


def hash_password(hasher: PasswordHasher, password: str) -> str:
    return hasher.hash(password)


def verify_password(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A real hash to verify against when the account does not exist, so the response time does not
# reveal which usernames are valid.
_DUMMY_HASHES: dict[tuple[int, int, int], str] = {}


def dummy_verify(hasher: PasswordHasher, password: str) -> None:
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hasher.hash(secrets.token_urlsafe(16))
    verify_password(hasher, _DUMMY_HASHES[key], password)


def random_token(nbytes: int = 32) -> str:
    """URL-safe random string with ``nbytes`` of entropy (32 bytes = 256 bits)."""
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def keyed_digest(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under the server secret, separated by purpose."""
    return hmac.new(
        secret.encode("utf-8"), f"{purpose}\x00{value}".encode(), hashlib.sha256
    ).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def new_participant_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def normalize_participant_token(value: str) -> str:
    """Accept what people type: lower case, spaces and dashes between groups."""
    return "".join(ch for ch in value.upper() if ch.isalnum())


def _fernet(secret: str) -> Fernet:
    key = hashlib.sha256(f"cact-token-encryption\x00{secret}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_token(secret: str, token: str) -> bytes:
    return _fernet(secret).encrypt(token.encode("ascii"))


def decrypt_token(secret: str, blob: bytes) -> str:
    try:
        return _fernet(secret).decrypt(blob).decode("ascii")
    except InvalidToken:
        raise ValueError(
            "token cannot be decrypted with this server's secret key (was the secret changed?)"
        ) from None
