"""Who is calling: the tenant of a request, from a verified token (shared by HTTP and WebSocket).

    AgentlaneError         code           HTTP
    ├── Unauthorized       unauthorized   401  no token, or one that does not verify (WS close 4001)
    ├── Forbidden          forbidden      403  a verified token without the operator claim, on an
    │                                          operator's route (``GET /ops/overview``)
    └── AuthUnavailable    unavailable    503  the JWKS endpoint cannot be reached to verify a token

``AGENTLANE_AUTH=none`` answers tenant ``default`` for everyone (development only; logged loudly).
``AGENTLANE_AUTH=jwt`` verifies with PyJWT, algorithms pinned per key:

- ``AGENTLANE_JWT_SECRET``: HS256 tokens signed with that secret; or
  ``AGENTLANE_JWT_SECRET_FILE``: a file (a mounted Secret) of one secret per line, read again when
  it changes: a token signed with any of them verifies, so a rotation adds the new secret beside
  the old one, moves the issuers to it, then drops the old one, with no restart and no refused
  request (runbooks/rotate-jwt-secret.md);
- ``AGENTLANE_JWT_JWKS_URL``: RS256 tokens signed by a key of that JWKS (Google ID tokens from Cloud
  Run); the audience is then required, because Google signs tokens for every audience.

A token's ``alg`` header only selects which configured key to try; it never widens the accepted
algorithms, so ``alg=none`` and HS256-with-the-RSA-public-key are refused. The tenant comes only
from the verified claim ``AGENTLANE_TENANT_CLAIM``; request headers naming a tenant are never read.

Operators read what spans tenants (the operations overview). An operator's token is a verified
token that carries ``AGENTLANE_OPERATOR_CLAIM``: ``NAME`` (the claim must be JSON ``true``) or
``NAME=VALUE`` (the claim equals ``VALUE``, or is a list holding it, or a space-separated string
holding it, as OAuth's ``scope``). An ordinary tenant token has no such claim and gets ``403``.
With ``AGENTLANE_AUTH=none`` every caller is an operator too (development).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt

from agentlane.errors import UNAVAILABLE_RETRY_AFTER_S, AgentlaneError, ConfigError
from agentlane.files import WatchedFile
from agentlane.jwks import JwksKeys, JwksUnavailable
from agentlane.settings import Settings

__all__ = [
    "DEFAULT_TENANT",
    "AuthUnavailable",
    "Authenticator",
    "Forbidden",
    "Identity",
    "Unauthorized",
    "bearer_token",
]

log = logging.getLogger(__name__)

#: The tenant of every caller when ``AGENTLANE_AUTH=none``.
DEFAULT_TENANT = "default"

#: Clock skew tolerated on ``exp``/``nbf``/``iat`` between the issuer and us.
CLOCK_SKEW = timedelta(seconds=30)

# Tenant ids end up in every row and log line: printable, no whitespace, bounded.
#: A tenant id: what a claim must be to name a tenant (docs/contract.md). Look-alikes such as
#: ``t1\u200b`` are refused rather than made a second tenant.
_TENANT_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")
#: RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
MIN_HS256_SECRET_BYTES = 32
_REQUIRED_CLAIMS = ["exp"]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for, and until when (Unix seconds; None: no expiry)."""

    tenant: str
    expires_at: float | None


class Unauthorized(AgentlaneError):
    """No token, or a token that does not verify. ``reason`` is safe to show the caller."""

    code, status, slug = "unauthorized", 401, "unauthorized"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(AgentlaneError):
    """A verified token that may not do this (an ordinary tenant's token on an operator's route).
    ``reason`` is safe to show the caller."""

    code, status, slug = "forbidden", 403, "forbidden"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthUnavailable(AgentlaneError):
    """The keys to verify a token cannot be fetched right now; retrying later may succeed."""

    code, status, slug = "unavailable", 503, "unavailable"
    retry_after_s = UNAVAILABLE_RETRY_AFTER_S

    @property
    def detail(self) -> str:
        return "cannot verify tokens right now; retry later"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` value; None when absent or another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """Maps a bearer token to its tenant. Build with :meth:`from_settings`; one per process."""

    def __init__(
        self,
        *,
        mode: str,
        secret: str | None = None,
        secret_file: Path | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        tenant_claim: str = "tenant",
        operator_claim: str = "agentlane_operator",
        leeway: timedelta = CLOCK_SKEW,
    ) -> None:
        if mode not in ("none", "jwt"):
            raise ConfigError(f"AGENTLANE_AUTH must be 'none' or 'jwt', not {mode!r}")
        if mode == "jwt" and not secret and not secret_file and not jwks_url:
            raise ConfigError(
                "AGENTLANE_AUTH=jwt needs AGENTLANE_JWT_SECRET, AGENTLANE_JWT_SECRET_FILE or "
                "AGENTLANE_JWT_JWKS_URL"
            )
        if mode == "jwt" and secret:
            _check_secrets([secret], "AGENTLANE_JWT_SECRET")
        if mode == "jwt" and jwks_url and not audience:
            raise ConfigError("AGENTLANE_JWT_JWKS_URL needs AGENTLANE_JWT_AUDIENCE")
        self.mode = mode
        self._secrets = _HmacSecrets(secret, secret_file if mode == "jwt" else None)
        self._audience = audience
        self._issuer = issuer
        self._tenant_claim = tenant_claim
        name, _, value = operator_claim.partition("=")
        if not name:
            raise ConfigError("AGENTLANE_OPERATOR_CLAIM must be NAME or NAME=VALUE")
        self._operator_claim, self._operator_value = name, value or None
        self._leeway = leeway
        # The key set lives 5 minutes; one fetch serves every waiter (see agentlane.jwks).
        self._jwks = JwksKeys(jwks_url) if mode == "jwt" and jwks_url else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """The authenticator the settings describe; warns loudly when authentication is off."""
        secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        authenticator = cls(
            mode=settings.auth,
            secret=secret or None,
            secret_file=settings.jwt_secret_file,
            jwks_url=settings.jwt_jwks_url or None,
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer or None,
            tenant_claim=settings.tenant_claim,
            operator_claim=settings.operator_claim,
        )
        if authenticator.mode == "none":
            log.warning(
                "AUTHENTICATION IS OFF (AGENTLANE_AUTH=none): every caller is tenant %r; "
                "never run this way outside development",
                DEFAULT_TENANT,
            )
        return authenticator

    async def tenant_for(self, token: str | None) -> str:
        """The verified tenant of ``token``; raises Unauthorized (or AuthUnavailable)."""
        return (await self.identify(token)).tenant

    async def identify(self, token: str | None) -> Identity:
        """The verified tenant of ``token`` and until when the token holds (a socket that
        outlives it is closed then); raises Unauthorized (or AuthUnavailable)."""
        if self.mode == "none":
            return Identity(DEFAULT_TENANT, None)
        if not token:
            raise Unauthorized("missing bearer token")
        claims = await self._verify(token)
        tenant = claims.get(self._tenant_claim)
        if not isinstance(tenant, str) or not _TENANT_ID.fullmatch(tenant):
            raise Unauthorized(f"token has no usable {self._tenant_claim!r} claim")
        expires = claims.get("exp")
        return Identity(tenant, float(expires) if isinstance(expires, int | float) else None)

    async def operator(self, token: str | None) -> str:
        """Verify that ``token`` is an operator's (see the module docstring); the name its
        requests are counted under (its tenant claim when it has one). Raises Unauthorized for a
        token that does not verify, Forbidden for one without the operator claim."""
        if self.mode == "none":
            return DEFAULT_TENANT
        if not token:
            raise Unauthorized("missing bearer token")
        claims = await self._verify(token)
        if not self._is_operator(claims.get(self._operator_claim)):
            wanted = self._operator_claim + (f"={self._operator_value}" if self._operator_value
                                             else "")
            raise Forbidden(f"operators only: the token lacks the claim {wanted}")
        tenant = claims.get(self._tenant_claim)
        return tenant if isinstance(tenant, str) and _TENANT_ID.fullmatch(tenant) else "operator"

    def _is_operator(self, value: object) -> bool:
        if self._operator_value is None:
            return value is True
        if isinstance(value, str):
            return value == self._operator_value or self._operator_value in value.split()
        return isinstance(value, list) and self._operator_value in value

    async def _verify(self, token: str) -> Mapping[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("malformed token") from None
        algorithm = header.get("alg")
        secrets = self._secrets.current() if algorithm == "HS256" else []
        if secrets:
            # During a rotation a token may be signed with any of them.
            for secret in secrets[:-1]:
                with contextlib.suppress(_BadSignature):
                    return self._decode(token, secret, "HS256")
            return self._decode(token, secrets[-1], "HS256")
        if algorithm == "RS256" and self._jwks is not None:
            return self._decode(token, await self._signing_key(token), "RS256")
        raise Unauthorized("token algorithm not accepted")

    async def _signing_key(self, token: str) -> Any:
        assert self._jwks is not None
        kid = jwt.get_unverified_header(token).get("kid")
        try:
            key = await self._jwks.key(kid if isinstance(kid, str) else None)
        except JwksUnavailable as exc:
            raise AuthUnavailable("cannot fetch the JWKS to verify the token") from exc
        if key is None:
            raise Unauthorized("token signed by an unknown key")
        return key

    def _decode(self, token: str, key: Any, algorithm: str) -> Mapping[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer not accepted") from None
        except jwt.InvalidSignatureError:
            raise _BadSignature() from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None


class _BadSignature(Unauthorized):
    """Internal: signed with another key (the next secret of a rotation may verify it)."""

    def __init__(self) -> None:
        super().__init__("token signature does not verify")


def _check_secrets(secrets: list[str], source: str) -> None:
    if not secrets:
        raise ConfigError(f"{source} holds no secret")
    for secret in secrets:
        if len(secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ConfigError(
                f"{source}: every secret must be at least {MIN_HS256_SECRET_BYTES} bytes "
                "(an HS256 key as long as its hash)"
            )


class _HmacSecrets:
    """The HS256 secrets tokens may be signed with: the variable's one, or the file's lines (read
    again when the file changes; a file that cannot be read or holds a bad secret keeps the last
    good set, loudly, rather than refuse every caller)."""

    def __init__(self, secret: str | None, path: Path | None) -> None:
        self._fixed = [secret] if secret else []
        self._file = WatchedFile(path) if path is not None else None
        self._good = self._fixed
        #: The file's text the good secrets came from, and the last problem logged.
        self._text: str | None = None
        self._problem: str | None = None
        if self._file is not None:
            try:
                self._load(self._file.read())
            except OSError as exc:
                raise ConfigError(f"AGENTLANE_JWT_SECRET_FILE {path}: {exc}") from None

    def _load(self, text: str) -> None:
        """Parse the file's text when it changed (``WatchedFile`` keeps it until the file
        moves): a request costs a stat, not a parse."""
        if text == self._text:
            return
        secrets = [line.strip() for line in text.splitlines() if line.strip()]
        _check_secrets(secrets, "AGENTLANE_JWT_SECRET_FILE")
        self._good, self._text = [*secrets, *self._fixed], text

    def current(self) -> list[str]:
        if self._file is not None:
            try:
                self._load(self._file.read())
                self._problem = None
            except (OSError, ConfigError) as exc:
                # Once per problem, not once per request while the file stays bad.
                if str(exc) != self._problem:
                    self._problem = str(exc)
                    log.error("keeping the last good JWT secrets: %s", exc)
        return self._good
