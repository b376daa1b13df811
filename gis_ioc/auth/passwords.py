"""Passwords: argon2id hashes (argon2-cffi), the length rule of TCVN 11930:2017 / TCVN 14423 (at least 8
characters with a second factor, else at least 14; at most 1,024), and a check against common and easily
guessed passwords (zxcvbn's offline lists of common passwords, words and names, and its patterns: no
network at run time).

How hard to guess
    zxcvbn estimates the guesses an attacker needs. A password needs at least 10^12 of them, or 10^10
    (zxcvbn's top score, "strong protection from an offline slow-hash attack") once the account has a
    second factor: the same split as the standard's 14 and 8 characters, since a cracked password alone
    no longer opens such an account. The margin of 100 is there because zxcvbn's dictionaries are English:
    it counts Vietnamese words as random letters. So the words an attacker here tries first are given to
    it as well (:data:`CONTEXT`: "mật khẩu", the province, the application, "admin", "quản trị", …, with
    and without diacritics), with the user name and the parts of the person's name.
"""

from __future__ import annotations

import re
import secrets
import string
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

from gis_ioc.errors import InvalidInput

_HASHER = PasswordHasher()  # argon2id with the library's current parameters
MIN_WITH_SECOND_FACTOR = 8
MIN_WITHOUT = 14
MAX_LENGTH = 1024
#: log10 of the guesses (zxcvbn's estimate) a password needs, without and with a second factor.
MIN_GUESSES_LOG10 = 12.0
MIN_GUESSES_LOG10_WITH_SECOND_FACTOR = 10.0
#: zxcvbn looks at this many first characters (its own bound: its matching grows quickly past it).
_STRENGTH_PREFIX = 72
#: Words an attacker would try first on this server (zxcvbn knows no Vietnamese); folded forms are added.
CONTEXT = (
    "mật khẩu",
    "matkhau",
    "admin",
    "administrator",
    "quản trị",
    "quantri",
    "quản trị viên",
    "hưng yên",
    "hungyen",
    "gis_ioc",
    "gisioc",
    "ioc",
    "trung tâm điều hành",
    "việt nam",
    "vietnam",
    "hà nội",
    "xin chào",
    "anh yêu em",
    "em yêu anh",
)
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
        raise InvalidInput(f"passwords have at most {MAX_LENGTH:,} characters", code="auth.password_too_long")


def fold(text: str) -> str:
    """Lower case without diacritics ("Hưng Yên" → "hung yen")."""
    text = text.lower().replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def _compact(text: str) -> str:
    return re.sub(r"[\W_]+", "", fold(text))


def user_inputs(username: str = "", full_name: str = "") -> list[str]:
    """What zxcvbn is told to try first: :data:`CONTEXT`, the user name and the person's name (whole and
    by parts of three letters or more), each as written and folded."""
    words = [*CONTEXT, username, full_name, *full_name.split(), *re.split(r"[\W_]+", username)]
    kept = [w.lower() for w in words if len(w) >= 3]
    return list(dict.fromkeys(kept + [fold(w) for w in kept] + [_compact(w) for w in kept if " " in w]))


def check_policy(password: str, *, second_factor: bool, username: str = "", full_name: str = "") -> None:
    """Refuse passwords too short for the account's factors, too long, containing the user name, or
    common or easy to guess (see the module's text)."""
    least = MIN_WITH_SECOND_FACTOR if second_factor else MIN_WITHOUT
    if len(password) < least:
        raise InvalidInput(
            f"the password must have at least {least} characters"
            + (" (8 once a second factor is enrolled)" if not second_factor else ""),
            code=f"auth.password_min_{least}",
        )
    check_length(password)
    if username and username.lower() in password.lower():
        raise InvalidInput("the password must not contain the user name", code="auth.password_has_username")
    if len(set(password)) < 5:
        raise InvalidInput("the password repeats too few characters", code="auth.password_repetitive")
    strength = zxcvbn(password[:_STRENGTH_PREFIX], user_inputs=user_inputs(username, full_name))
    needed = MIN_GUESSES_LOG10_WITH_SECOND_FACTOR if second_factor else MIN_GUESSES_LOG10
    if float(strength["guesses_log10"]) < needed:
        warning = strength["feedback"].get("warning") or ""
        raise InvalidInput(
            "the password is too common or too easy to guess"
            + (f" ({warning.rstrip('.')})" if warning else "")
            + ": choose a longer phrase of unrelated words",
            code="auth.password_weak",
        )


def generate_password(length: int = 20) -> str:
    """A one-time password for a new account (it must be changed at first login)."""
    alphabet = string.ascii_letters + string.digits + "-_.!@#%"
    return "".join(secrets.choice(alphabet) for _ in range(length))
