"""OAuth 2.0 authorization-code flow as FreshBooks runs it: one-time codes, rotating single-use refresh tokens."""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from .errors import (
    FieldError,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    ScopeMissing,
    TokenRejected,
    UnsupportedGrantType,
    UnsupportedResponseType,
)

DEFAULT_SCOPES = "user:profile:read user:clients:read user:invoices:read user:payments:read"
_RESOURCES = ("profile", "clients", "invoices", "payments", "billable_items", "estimates", "expenses", "taxes")
KNOWN_SCOPES = frozenset(f"user:{r}:{mode}" for r in _RESOURCES for mode in ("read", "write"))
CODE_LIFETIME = timedelta(minutes=5)


@dataclass
class AuthCode:
    scopes: tuple[str, ...]
    redirect_uri: str
    expires_at: datetime
    used: bool = False


@dataclass
class AccessToken:
    token: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime


@dataclass
class RefreshToken:
    scopes: tuple[str, ...]
    state: str = "active"  # active | spent | revoked


def parse_scopes(text: str) -> tuple[str, ...]:
    """Split a space-separated scope string; unknown scopes raise ``ValueError`` naming them."""
    scopes = tuple(dict.fromkeys(s for s in text.replace("+", " ").split() if s))
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s) {' '.join(unknown)}; known: {' '.join(sorted(KNOWN_SCOPES))}")
    if not scopes:
        raise ValueError("no scope given")
    return scopes


class OAuthServer:
    """Codes and tokens of the one registered FreshBooks app (``client_id``/``client_secret``/``redirect_uri``)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        access_token_ttl: int,
        clock: Callable[[], datetime],
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.access_token_ttl = access_token_ttl
        self.clock = clock
        self.lock = threading.Lock()
        self.codes: dict[str, AuthCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}

    def reset(self) -> None:
        with self.lock:
            self.codes.clear()
            self.access.clear()
            self.refresh.clear()

    # --- what the user's browser does on auth.freshbooks.com ----------------------------------------------

    def issue_code(self, scopes: str = DEFAULT_SCOPES, redirect_uri: str | None = None) -> str:
        """A one-time authorization code, as if the user clicked "Allow" (lives 5 minutes of emulator clock)."""
        try:
            parsed = parse_scopes(scopes)
        except ValueError as exc:
            raise FieldError("scopes", str(exc)) from None
        code = secrets.token_hex(20)
        with self.lock:
            self.codes[code] = AuthCode(parsed, redirect_uri or self.redirect_uri, self.clock() + CODE_LIFETIME)
        return code

    def authorize(self, params: Mapping[str, str]) -> str:
        """``GET /oauth/authorize``: validate and return the redirect location (``redirect_uri?code=…``).

        Client and redirect problems raise (no redirect to an unverified URI, RFC 6749 4.1.2.1); problems with
        ``response_type`` or ``scope`` redirect with ``error=…``.
        """
        if params.get("client_id") != self.client_id:
            raise InvalidClient("unknown client_id")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            raise InvalidRequest("redirect_uri is required")
        if redirect_uri != self.redirect_uri:
            raise InvalidRequest("redirect_uri is not registered for this application")
        if params.get("response_type") != "code":
            error: OAuthError = UnsupportedResponseType("response_type must be 'code'")
            return self._redirect(redirect_uri, error=error.error, error_description=error.message)
        try:
            scopes = " ".join(parse_scopes(params["scope"])) if params.get("scope") else DEFAULT_SCOPES
        except ValueError as exc:
            return self._redirect(redirect_uri, error=InvalidScope.error, error_description=str(exc))
        return self._redirect(redirect_uri, code=self.issue_code(scopes, redirect_uri))

    @staticmethod
    def _redirect(uri: str, **params: str) -> str:
        return f"{uri}{'&' if urlsplit(uri).query else '?'}{urlencode(params)}"

    # --- POST /auth/oauth/token ----------------------------------------------------------------------------

    def token(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: str(v) for k, v in params.items() if v is not None}
        client_id, secret = values.get("client_id", ""), values.get("client_secret", "")
        if not (
            hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(secret.encode(), self.client_secret.encode())
        ):
            raise InvalidClient("Client authentication failed due to unknown client or bad client_secret.")
        grant_type = values.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type is required")
        with self.lock:
            if grant_type == "authorization_code":
                scopes = self._redeem_code(values)
            elif grant_type == "refresh_token":
                scopes = self._spend_refresh(values)
            else:
                raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
            return self._issue_pair(scopes)

    def _redeem_code(self, values: dict[str, str]) -> tuple[str, ...]:
        code = values.get("code")
        if not code:
            raise InvalidRequest("code is required for grant_type authorization_code")
        grant = self.codes.get(code)
        if grant is None:
            raise InvalidGrant(
                "The provided authorization grant is invalid, expired, revoked or was issued to another client."
            )
        if grant.used:
            raise InvalidGrant("The authorization code was already used; authorize again.")
        if self.clock() >= grant.expires_at:
            raise InvalidGrant("The authorization code expired (codes live 5 minutes); authorize again.")
        if values.get("redirect_uri") != grant.redirect_uri:
            raise InvalidGrant("redirect_uri does not match the one used in the authorization request.")
        grant.used = True
        return grant.scopes

    def _spend_refresh(self, values: dict[str, str]) -> tuple[str, ...]:
        token = values.get("refresh_token")
        if not token:
            raise InvalidRequest("refresh_token is required for grant_type refresh_token")
        held = self.refresh.get(token)
        if held is None:
            raise InvalidGrant("The refresh token is invalid.")
        if held.state == "spent":
            raise InvalidGrant("The refresh token was already used (refresh tokens are single-use); re-authorize.")
        if held.state == "revoked":
            raise InvalidGrant("The refresh token was revoked; re-authorize.")
        held.state = "spent"
        return held.scopes

    def _issue_pair(self, scopes: tuple[str, ...]) -> dict[str, Any]:
        now = self.clock()
        access, refresh = secrets.token_hex(32), secrets.token_hex(32)
        self.access[access] = AccessToken(access, scopes, now, now + timedelta(seconds=self.access_token_ttl))
        self.refresh[refresh] = RefreshToken(scopes)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_ttl,
            "refresh_token": refresh,
            "scope": " ".join(scopes),
            "created_at": int(now.timestamp()),
        }

    # --- bearer checks on every API call -------------------------------------------------------------------

    @staticmethod
    def bearer(authorization: str | None) -> str | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def check(self, authorization: str | None, needed: str | None) -> AccessToken:
        """The access token of ``Authorization: Bearer …``; 401 if missing/unknown/expired, 403 without scope."""
        token = self.bearer(authorization)
        if token is None:
            raise TokenRejected("This action requires authentication to continue (send Authorization: Bearer <token>).")
        with self.lock:
            held = self.access.get(token)
        if held is None:
            raise TokenRejected("The access token is invalid.")
        if self.clock() >= held.expires_at:
            raise TokenRejected("The access token expired; refresh it.")
        if needed is not None and needed not in held.scopes:
            raise ScopeMissing(held.scopes, needed)
        return held

    def expire(self, token: str | None = None) -> None:
        """Expire one access token (``None``: all of them) by moving its expiry to now."""
        now = self.clock()
        with self.lock:
            for key, held in self.access.items():
                if token is None or key == token:
                    held.expires_at = min(held.expires_at, now)

    def revoke_refresh(self) -> None:
        with self.lock:
            for held in self.refresh.values():
                if held.state == "active":
                    held.state = "revoked"
