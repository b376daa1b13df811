"""Tokens from the province's single sign-on: OpenID Connect JWTs checked with PyJWT.

The signature is checked with the issuer's keys (JWKS, fetched and cached by ``PyJWKClient``), against an
allow-list of asymmetric algorithms: ``none`` and HMAC are refused, so a public key cannot be used as an
HMAC secret (key confusion). Issuer, audience, expiry and not-before are required and checked.
Tokens and the user names they carry are bounded before use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jwt

from gis_ioc.auth.roles import ROLES
from gis_ioc.auth.sessions import AuthenticationFailed, Principal

#: The largest token looked at, and the longest user name taken from one.
TOKEN_MAX = 16 * 1024
USERNAME_MAX = 128
#: Asymmetric algorithms only.
ALLOWED = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    roles_claim: str = "roles"
    communes_claim: str = "communes"
    leeway_s: int = 30

    def __post_init__(self) -> None:
        refused = sorted(set(self.algorithms) - ALLOWED)
        if refused:
            raise ValueError(f"algorithms {refused} are not allowed for single sign-on tokens")


class OidcVerifier:
    def __init__(self, config: OidcConfig, jwks_client: jwt.PyJWKClient | None = None) -> None:
        self.config = config
        self.jwks = jwks_client or jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=600, timeout=5)

    def principal(self, token: str) -> Principal:
        if len(token) > TOKEN_MAX:
            raise AuthenticationFailed(f"the token is larger than {TOKEN_MAX // 1024} KB")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationFailed("the token is not a JWT") from None
        if header.get("alg") not in self.config.algorithms:
            raise AuthenticationFailed(f"token algorithm {header.get('alg')!r} is not accepted")
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationFailed("the token has expired") from None
        except (jwt.PyJWTError, jwt.PyJWKClientError) as exc:
            raise AuthenticationFailed(f"the token is not valid: {exc}") from None
        roles = claims.get(self.config.roles_claim) or []
        communes = claims.get(self.config.communes_claim) or []
        if not isinstance(roles, list) or not isinstance(communes, list):
            raise AuthenticationFailed("the token's roles and communes must be lists")
        known = frozenset(str(r) for r in roles if r in ROLES)
        communes = [c for c in communes if isinstance(c, str) and re.fullmatch(r"\d{5}", c)]
        username = str(claims.get("preferred_username") or claims["sub"])
        if len(username) > USERNAME_MAX:
            raise AuthenticationFailed(f"the token's user name is longer than {USERNAME_MAX} characters")
        return Principal(
            username,
            known,
            frozenset(str(c) for c in communes),
            second_factor="mfa" in (claims.get("amr") or []),
            via="oidc",
            extra={"sub": claims["sub"], "iss": claims["iss"]},
        )
