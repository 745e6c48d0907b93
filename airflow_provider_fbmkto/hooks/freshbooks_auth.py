"""FreshBooks credentials and the OAuth token lifecycle.

* :class:`FreshBooksCreds` is the ``freshbooks`` connection parsed once into a frozen value; extras go
  through an allow-list, so a typo is an error naming the key rather than a silently ignored setting.
* :class:`TokenManager` owns the rotating token pair. FreshBooks refresh tokens are single-use, and Airflow
  tasks cannot write connections, so the current pair lives in the state DB (Fernet-encrypted there).
  A refresh happens under a cross-process lock and re-reads the stored pair once it holds the lock: when
  another worker has already refreshed, its pair is used and no second refresh token is spent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from airflow_provider_fbmkto.exceptions import ApiError, ConfigError, ReauthorizationRequired
from airflow_provider_fbmkto.hooks.connection_values import base_url as connection_base_url
from airflow_provider_fbmkto.hooks.connection_values import mask
from airflow_provider_fbmkto.hooks.freshbooks_errors import token_error
from airflow_provider_fbmkto.http import HttpClient
from airflow_provider_fbmkto.state import TokenPair

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state import TokenStore

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.freshbooks.com"
REAL_API_HOST = "api.freshbooks.com"
REAL_AUTH_URL = "https://auth.freshbooks.com"
DEFAULT_SCOPES = ("user:profile:read", "user:clients:read", "user:invoices:read", "user:payments:read")
TOKEN_PATH = "/auth/oauth/token"
#: An access token with less life than this is refreshed before use.
REFRESH_MARGIN_SECONDS = 300
#: FreshBooks access tokens live 12 hours when the answer does not say.
DEFAULT_EXPIRES_IN = 43200
ALLOWED_EXTRAS = ("redirect_uri", "account_id", "webhook_verifier", "scopes")
_UI_PREFIX = "extra__freshbooks__"


@dataclass(frozen=True, slots=True)
class FreshBooksCreds:
    """A ``freshbooks`` connection, validated.

    :param conn_id: the Airflow connection id (used in error messages and as the token store key).
    :param base_url: API base (connection host), default ``https://api.freshbooks.com``.
    :param auth_url: where the authorize page lives: ``https://auth.freshbooks.com`` for the real API,
        else the host itself (the emulator serves ``/oauth/authorize``).
    :param account_id: accounting account id; ``None`` means discover it from ``users/me``.
    :param scopes: OAuth scopes asked for at authorization.
    """

    conn_id: str
    client_id: str
    client_secret: str = field(repr=False)
    base_url: str = DEFAULT_API_URL
    auth_url: str = REAL_AUTH_URL
    redirect_uri: str | None = None
    account_id: str | None = None
    webhook_verifier: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES

    @classmethod
    def from_connection(cls, conn: Any) -> FreshBooksCreds:
        """Parse an Airflow ``Connection``; any bad or unknown field raises :class:`ConfigError`."""
        conn_id = conn.conn_id
        if conn.conn_type and conn.conn_type not in ("freshbooks", "generic"):
            raise ConfigError(
                f"connection {conn_id!r} has type {conn.conn_type!r}; a 'freshbooks' connection is needed"
            )
        extras = _extras(conn_id, conn.extra_dejson)
        if not conn.login:
            raise ConfigError(f"connection {conn_id!r} has no login: set it to the FreshBooks app's client id")
        if not conn.password:
            raise ConfigError(f"connection {conn_id!r} has no password: set it to the FreshBooks app's client secret")
        base_url = connection_base_url(conn.host, conn.port) if conn.host else DEFAULT_API_URL
        auth_url = REAL_AUTH_URL if urlsplit(base_url).hostname == REAL_API_HOST else base_url
        redirect_uri = extras.get("redirect_uri")
        if redirect_uri:
            _check_redirect_uri(conn_id, redirect_uri)
        scopes = tuple((extras.get("scopes") or "").replace(",", " ").split()) or DEFAULT_SCOPES
        return cls(
            conn_id=conn_id,
            client_id=conn.login,
            client_secret=conn.password,
            base_url=base_url,
            auth_url=auth_url,
            redirect_uri=redirect_uri,
            account_id=extras.get("account_id"),
            webhook_verifier=extras.get("webhook_verifier"),
            scopes=scopes,
        )


def _extras(conn_id: str, raw: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = key[len(_UI_PREFIX) :] if key.startswith(_UI_PREFIX) else key
        if name not in ALLOWED_EXTRAS:
            raise ConfigError(
                f"connection {conn_id!r} has an unknown extra {key!r}; allowed extras: {', '.join(ALLOWED_EXTRAS)}"
            )
        if value is None or value == "":
            continue
        if not isinstance(value, (str, int)):
            raise ConfigError(f"connection {conn_id!r}: extra {key!r} must be a string")
        out[name] = str(value).strip()
    return out


def _check_redirect_uri(conn_id: str, uri: str) -> None:
    parts = urlsplit(uri)
    local = parts.hostname in ("localhost", "127.0.0.1")
    if parts.scheme != "https" and not (local and parts.scheme == "http"):
        raise ConfigError(f"connection {conn_id!r}: redirect_uri {uri!r} must be an https URL (FreshBooks rule)")
    if parts.query or parts.fragment:
        raise ConfigError(f"connection {conn_id!r}: redirect_uri {uri!r} must not carry a query string")


def businesses(identity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``business`` objects of a ``users/me`` answer (``id``, ``name``, ``account_id``)."""
    return [
        m["business"]
        for m in identity.get("business_memberships") or []
        if isinstance(m, dict) and isinstance(m.get("business"), dict)
    ]


def account_id_from_identity(identity: Mapping[str, Any], conn_id: str) -> str:
    """The one accounting ``account_id`` of the user; several or none is a :class:`ConfigError` naming them."""
    accounts = {str(b["account_id"]): str(b.get("name") or "") for b in businesses(identity) if b.get("account_id")}
    if not accounts:
        raise ConfigError(
            f"the FreshBooks user of connection {conn_id!r} belongs to no business with an accounting account; "
            "set the connection's 'account_id' extra"
        )
    if len(accounts) > 1:
        listed = ", ".join(f"{a} ({n})" if n else a for a, n in accounts.items())
        raise ConfigError(
            f"the FreshBooks user of connection {conn_id!r} belongs to several businesses ({listed}); "
            "set the connection's 'account_id' extra to one of them"
        )
    return next(iter(accounts))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TokenManager:
    """The stored token pair of one connection: hand out, refresh under a lock, exchange codes.

    :param creds: the parsed connection.
    :param http: a client for the token endpoint (its own, small retry policy keeps a refresh within the
        lock's lease); every token it sees is registered with it for redaction.
    :param store: the state DB's token store.
    :param clock: returns aware UTC now; injectable for tests.
    :param lock_timeout: how long to wait for another worker's refresh (longer than the lease, so a waiter
        outlives a crashed holder).
    :param lease_seconds: how long a dead lock holder blocks others (longer than a refresh can take).
    :param protect: also called with every token seen (the API client's ``add_secret``).
    """

    def __init__(
        self,
        creds: FreshBooksCreds,
        http: HttpClient,
        store: TokenStore,
        *,
        clock: Callable[[], datetime] = _utcnow,
        lock_timeout: float = 150.0,
        lease_seconds: float = 120.0,
        protect: Callable[[str], None] | None = None,
    ) -> None:
        self.creds = creds
        self.http = http
        self.store = store
        self.clock = clock
        self.lock_timeout = lock_timeout
        self.lease_seconds = lease_seconds
        self._protect_extra = protect
        self._pair: TokenPair | None = None

    # -- authorization code ------------------------------------------------------------------------------

    def authorize_url(self, state: str | None = None) -> str:
        """The URL a user opens to grant access (redirects to ``redirect_uri?code=…``)."""
        params = {
            "client_id": self.creds.client_id,
            "response_type": "code",
            "redirect_uri": self._redirect_uri(),
            "scope": " ".join(self.creds.scopes),
        }
        if state:
            params["state"] = state
        return f"{self.creds.auth_url.rstrip('/')}/oauth/authorize?{urlencode(params)}"

    def exchange_code(self, code: str) -> TokenPair:
        """Exchange a one-time authorization code for the first token pair and store it."""
        self.http.add_secret(code)
        mask(code)
        pair = self._grant("authorization_code", code=code, redirect_uri=self._redirect_uri())
        with self.store.refresh_lock(self.creds.conn_id, timeout=self.lock_timeout, lease_seconds=self.lease_seconds):
            self.store.save(self.creds.conn_id, pair)
        self._pair = pair
        return pair

    def _redirect_uri(self) -> str:
        if not self.creds.redirect_uri:
            raise ConfigError(
                f"connection {self.creds.conn_id!r} has no 'redirect_uri' extra: set it to the redirect URI "
                "registered on the FreshBooks app"
            )
        return self.creds.redirect_uri

    # -- access tokens -----------------------------------------------------------------------------------

    def stored(self) -> TokenPair | None:
        """The stored pair as it is (never refreshes); its tokens are registered for redaction."""
        pair = self.store.load(self.creds.conn_id)
        if pair is not None:
            self._protect(pair)
        return pair

    def access_token(self) -> str:
        """A usable access token: the cached or stored one, refreshed when it has < 5 minutes of life."""
        pair = self._pair or self.stored()
        if pair is None:
            raise self._no_pair()
        if pair.expires_within(REFRESH_MARGIN_SECONDS, now=self.clock()):
            pair = self._refresh(pair.access_token, refused=False)
        self._pair = pair
        return pair.access_token

    def after_unauthorized(self, refused_token: str) -> str:
        """A token to retry with after ``refused_token`` got HTTP 401 (refreshes at most once)."""
        return self._refresh(refused_token, refused=True).access_token

    @property
    def granted_scopes(self) -> tuple[str, ...]:
        pair = self._pair
        return tuple(pair.scope.split()) if pair and pair.scope else ()

    def _refresh(self, had: str, *, refused: bool) -> TokenPair:
        conn_id = self.creds.conn_id
        with self.store.refresh_lock(conn_id, timeout=self.lock_timeout, lease_seconds=self.lease_seconds):
            stored = self.stored()
            if stored is None:
                raise self._no_pair()
            now = self.clock()
            if refused:
                usable = stored.access_token != had and not stored.expires_within(0, now=now)
            else:
                usable = not stored.expires_within(REFRESH_MARGIN_SECONDS, now=now)
            if usable:
                log.info("FreshBooks connection %s: using the token pair another worker refreshed", conn_id)
                self._pair = stored
                return stored
            log.info("FreshBooks connection %s: refreshing the access token", conn_id)
            try:
                pair = self._grant("refresh_token", refresh_token=stored.refresh_token)
            except ReauthorizationRequired as exc:
                self.store.mark_refused(conn_id, str(exc))  # the status page shows it without asking FreshBooks
                raise
            self.store.save(conn_id, pair)
            self._pair = pair
            return pair

    def _grant(self, grant_type: str, **fields: str) -> TokenPair:
        body = {
            "grant_type": grant_type,
            "client_id": self.creds.client_id,
            "client_secret": self.creds.client_secret,
            **fields,
        }
        if grant_type == "refresh_token" and self.creds.redirect_uri:
            body["redirect_uri"] = self.creds.redirect_uri
        started = self.clock()
        response = self.http.request("POST", TOKEN_PATH, json=body, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise token_error(response, conn_id=self.creds.conn_id, grant=grant_type, redact=self.http.redact)
        try:
            data = response.json()
            access, refresh = data["access_token"], data["refresh_token"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(
                "FreshBooks token endpoint answered 200 without an access and refresh token", status=200
            ) from None
        pair = TokenPair(
            access_token=str(access),
            refresh_token=str(refresh),
            expires_at=started + timedelta(seconds=int(data.get("expires_in") or DEFAULT_EXPIRES_IN)),
            scope=str(data.get("scope") or ""),
        )
        self._protect(pair)
        return pair

    def _protect(self, pair: TokenPair) -> None:
        self.http.add_secret(pair.access_token, pair.refresh_token)
        mask(pair.access_token, pair.refresh_token)
        if self._protect_extra is not None:
            self._protect_extra(pair.access_token)
            self._protect_extra(pair.refresh_token)

    def _no_pair(self) -> ReauthorizationRequired:
        conn_id = self.creds.conn_id
        return ReauthorizationRequired(
            f"no FreshBooks token pair is stored for connection {conn_id!r}; authorize first: "
            f"fbmkto authorize --conn-id {conn_id}"
        )
