"""Passwords: argon2id hashes (argon2-cffi), the length rule of TCVN 11930:2017 / TCVN 14423 (at least 8
characters with a second factor, else at least 14; at most 1,024), and a check against common and easily
guessed passwords (zxcvbn's offline lists of common passwords, words and names, and its patterns: no
network at run time)."""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

from gis_ioc.errors import InvalidInput

_HASHER = PasswordHasher()  # argon2id with the library's current parameters
MIN_WITH_SECOND_FACTOR = 8
MIN_WITHOUT = 14
MAX_LENGTH = 1024
#: zxcvbn's score (0-4) a password needs: 3 means more than 10^8 guesses.
MIN_STRENGTH = 3
#: zxcvbn looks at this many first characters (its own bound: its matching grows quickly past it).
_STRENGTH_PREFIX = 72
#: Words an attacker would try first on this server.
_CONTEXT = ["gis_ioc", "gisioc", "ioc", "hungyen", "hưng yên", "hung yen"]
#: Verified against when the account does not exist, so that both cases take the same time.
_DUMMY = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches; the same work is done when there is no stored hash."""
    try:
        return _HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def check_length(password: str) -> None:
    """Refuse a password longer than any the server accepts (before any work is done with it)."""
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"passwords have at most {MAX_LENGTH:,} characters")


def check_policy(password: str, *, second_factor: bool, username: str = "") -> None:
    """Refuse passwords too short for the account's factors, too long, containing the user name, or
    common or easy to guess."""
    least = MIN_WITH_SECOND_FACTOR if second_factor else MIN_WITHOUT
    if len(password) < least:
        raise InvalidInput(
            f"the password must have at least {least} characters"
            + (" (8 once a second factor is enrolled)" if not second_factor else "")
        )
    check_length(password)
    if username and username.lower() in password.lower():
        raise InvalidInput("the password must not contain the user name")
    if len(set(password)) < 5:
        raise InvalidInput("the password repeats too few characters")
    strength = zxcvbn(password[:_STRENGTH_PREFIX], user_inputs=[*_CONTEXT, username] if username else _CONTEXT)
    if strength["score"] < MIN_STRENGTH:
        warning = strength["feedback"].get("warning") or ""
        raise InvalidInput(
            "the password is too common or too easy to guess"
            + (f" ({warning.rstrip('.')})" if warning else "")
            + ": choose a longer phrase of unrelated words"
        )


def generate_password(length: int = 20) -> str:
    """A one-time password for a new account (it must be changed at first login)."""
    alphabet = string.ascii_letters + string.digits + "-_.!@#%"
    return "".join(secrets.choice(alphabet) for _ in range(length))
