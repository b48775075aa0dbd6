import re

import pytest

from app.auth.security import (
    TOKEN_ALPHABET,
    decrypt_token,
    encrypt_token,
    hash_password,
    keyed_digest,
    new_participant_token,
    normalize_participant_token,
    password_hasher,
    verify_password,
)

ARGON2_RE = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


def test_password_hash_is_argon2id_at_least_owasp_minimum():
    hasher = password_hasher(3, 65536, 1)  # the production defaults
    stored = hash_password(hasher, "correct horse battery")
    m, t, p = map(int, ARGON2_RE.match(stored).groups())
    assert m >= 19456 and t >= 2 and p >= 1
    assert verify_password(hasher, stored, "correct horse battery")
    assert not verify_password(hasher, stored, "correct horse battery!")
    assert not verify_password(hasher, "not-a-hash", "x")


def test_stronger_parameters_request_a_rehash():
    weak = password_hasher(2, 19456, 1)
    stored = hash_password(weak, "pw-1234567890")
    assert password_hasher(3, 65536, 1).check_needs_rehash(stored)
    assert not weak.check_needs_rehash(stored)


def test_participant_tokens_use_unambiguous_characters():
    tokens = {new_participant_token() for _ in range(500)}
    assert len(tokens) == 500
    for token in tokens:
        assert len(token) == 8
        assert set(token) <= set(TOKEN_ALPHABET)
    assert not set("01OIL") & set(TOKEN_ALPHABET)
    assert normalize_participant_token(" ab3d-ef7h ") == "AB3DEF7H"


def test_token_encryption_round_trips_and_needs_the_same_secret():
    secret = "k" * 40
    blob = encrypt_token(secret, "AB3DEF7H")
    assert b"AB3DEF7H" not in blob
    assert decrypt_token(secret, blob) == "AB3DEF7H"
    with pytest.raises(ValueError, match="secret"):
        decrypt_token("z" * 40, blob)


def test_keyed_digest_depends_on_secret_and_purpose():
    a = keyed_digest("s" * 40, "participant-token", "AB3DEF7H")
    assert a != keyed_digest("t" * 40, "participant-token", "AB3DEF7H")
    assert a != keyed_digest("s" * 40, "csrf", "AB3DEF7H")
    assert len(a) == 64
