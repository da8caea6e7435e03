"""Operator passwords: argon2id hashes made by `monitor hash-password`, bcrypt hashes accepted.

Only hashes live in the YAML. Verifying takes the same time whether or not the operator
exists (a dummy hash is checked for an unknown name), so sign-in answers do not tell which
operator names are real.
"""

from __future__ import annotations

import re

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>` (argon2-cffi, libsodium, passlib).
ARGON2_HASH = re.compile(
    r"^\$argon2(id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$"
)
# `$2b$12$` and 53 characters of bcrypt's base64 (salt and hash).
BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$")
# The longest password a sign-in form takes: argon2 would hash megabytes, bcrypt reads 72 bytes.
MAX_PASSWORD = 1024

_hasher = PasswordHasher()
_DUMMY = _hasher.hash("not an operator's password")


def looks_like_hash(value: str) -> bool:
    """Whether `value` is an argon2 or bcrypt hash (never a password typed in by mistake)."""
    return bool(ARGON2_HASH.match(value) or BCRYPT_HASH.match(value))


def hash_password(password: str) -> str:
    """An argon2id hash with argon2-cffi's default (RFC 9106 low-memory) parameters."""
    if not password:
        raise ValueError("the password is empty")
    return _hasher.hash(password)


def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored`; None (no such operator) checks a dummy hash so the
    answer takes as long, and is False."""
    if len(password) > MAX_PASSWORD:
        return False
    if stored is not None and BCRYPT_HASH.match(stored):
        return bcrypt.checkpw(password.encode(), stored.encode())
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
