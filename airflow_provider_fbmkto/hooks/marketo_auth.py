"""Marketo access tokens: the identity call's answer, a process-wide cache, secrets masking.

Tokens are cached per (instance, client id) and shared by every hook of the process. Marketo answers a
token request made before expiry with the *same* token and its remaining life (``expires_in`` can be 0), so
a token with under a minute left is refreshed, a nearly dead one is used while it has a few seconds, and one
with none is waited out before asking again (:func:`cache_entry`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_fbmkto.exceptions import ApiError, AuthError
from airflow_provider_fbmkto.hooks.marketo_types import MarketoCreds

Clock = Callable[[], float]

IDENTITY_PATH = "/identity/oauth/token"
#: Refresh a token with less life than this (seconds, scaled like every wait of the hook).
TOKEN_MARGIN = 60.0
#: Use a nearly dead token down to this much life; below it, wait for Marketo to issue a new one.
MIN_TOKEN_LIFE = 5.0


def identity_form(creds: MarketoCreds) -> dict[str, str]:
    """The identity request's form body (never a query string: URLs end up in debug logs)."""
    return {"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": creds.client_secret}


def identity_scope(body: Any) -> str | None:
    """The identity answer's ``scope`` (the API-only user), or None."""
    scope = body.get("scope") if isinstance(body, Mapping) else None
    return str(scope) if scope else None


def read_identity(status: int, body: Any, creds: MarketoCreds) -> tuple[str, float]:
    """``(token, expires_in)`` from the identity answer, or the typed error naming the fix."""
    if status == 401:
        raise AuthError(
            f"Marketo rejected the client id/secret of connection {creds.conn_id!r} "
            "(HTTP 401 from identity); check login/password",
            status=401,
        )
    if status != 200 or not isinstance(body, Mapping) or not body.get("access_token"):
        raise ApiError(
            f"Marketo identity of connection {creds.conn_id!r} answered HTTP {status} without a token; "
            f"check that host {creds.base_url} is the REST base URL (https://<munchkin>.mktorest.com)",
            status=status,
            retryable=status >= 500,
        )
    return str(body["access_token"]), float(body.get("expires_in") or 0)


@dataclass(frozen=True, slots=True)
class CachedToken:
    token: str
    #: monotonic time at which the token stops working
    expires_at: float
    #: monotonic time from which we ask the identity endpoint again
    refresh_at: float
    #: the identity answer's ``scope``: the API-only user owning the custom service (its ``userId`` in usage)
    scope: str | None = None


class TokenCache:
    """Access tokens by (instance, client id), shared by every hook of the process; one fetch at a time."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._fetch_locks: dict[tuple[str, str], threading.Lock] = {}
        self._tokens: dict[tuple[str, str], CachedToken] = {}

    def fetch_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._fetch_locks.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str]) -> CachedToken | None:
        """The cached token while it is fresh enough to use without asking again."""
        with self._lock:
            entry = self._tokens.get(key)
        if entry is None or self._clock() >= entry.refresh_at:
            return None
        return entry

    def put(self, key: tuple[str, str], entry: CachedToken) -> None:
        with self._lock:
            self._tokens[key] = entry

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def invalidate(self, key: tuple[str, str], token: str | None) -> None:
        """Drop the cached token if it is still ``token`` (another thread may already have replaced it)."""
        with self._lock:
            entry = self._tokens.get(key)
            if entry is not None and (token is None or entry.token == token):
                del self._tokens[key]


#: The process-wide token cache.
TOKENS = TokenCache()


def cache_entry(token: str, ttl: float, *, scale: float, now: float, last_try: bool) -> CachedToken | None:
    """How long to use a fresh identity answer; ``None`` when it has too little life (wait ``ttl``, ask again)."""
    margin, min_life = TOKEN_MARGIN * scale, MIN_TOKEN_LIFE * scale
    if ttl > margin:
        return CachedToken(token, now + ttl, now + ttl - margin)
    if ttl > min_life or last_try:
        return CachedToken(token, now + ttl, now + max(0.0, ttl - min_life))
    return None
