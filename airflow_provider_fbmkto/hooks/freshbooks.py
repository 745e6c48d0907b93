"""FreshBooksHook: OAuth with rotating refresh tokens, lazy paging over search windows, webhooks.

Every request goes through :class:`~airflow_provider_fbmkto.http.HttpClient` (timeouts, retries of 429/5xx
honouring Retry-After, redaction); this module adds the FreshBooks specifics: bearer tokens from the
state DB (:mod:`.freshbooks_auth`), one refresh-and-retry on a 401, typed errors for every error shape
(:mod:`.freshbooks_errors`), and conversion to domain records (:mod:`.freshbooks_records`).

Windows: FreshBooks' ``updated`` is naive US/Eastern wall time and its search takes whole days, so a UTC
window ``[since, until)`` is searched as Eastern days widened by one on each side and then filtered exactly
on the converted ``updated`` -- correct across both DST changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk import BaseHook

from airflow_provider_fbmkto.exceptions import ApiError, ConfigError, FbmktoError
from airflow_provider_fbmkto.hooks.connection_values import mask
from airflow_provider_fbmkto.hooks.freshbooks_auth import (
    FreshBooksCreds,
    TokenManager,
    account_id_from_identity,
    businesses,
)
from airflow_provider_fbmkto.hooks.freshbooks_errors import api_error
from airflow_provider_fbmkto.hooks.freshbooks_paging import paged
from airflow_provider_fbmkto.hooks.freshbooks_records import parse_client, parse_invoice, parse_payment
from airflow_provider_fbmkto.hooks.freshbooks_webhooks import FreshBooksWebhooks, Webhook
from airflow_provider_fbmkto.http import HttpClient, RetryPolicy
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID
from airflow_provider_fbmkto.sync.records import Client, Invoice, Payment
from airflow_provider_fbmkto.sync.window import Window, search_days

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state import StateDB, TokenPair

Params = list[tuple[str, Any]]

IDENTITY_PATH = "/auth/api/v1/users/me"
#: FreshBooks caps ``per_page`` at 100.
MAX_PER_PAGE = 100
#: Ids per ``search[invoiceids][]`` request.
IDS_PER_REQUEST = 100
#: Pages of one listing fetched at once by default (after the first, which tells how many there are).
PAGE_CONCURRENCY = 1

_KINDS: dict[str, tuple[str, str, str, Callable[[Mapping[str, Any]], Any]]] = {
    # kind: (path under the account, list key, needed scope, parser)
    "client": ("users/clients", "clients", "user:clients:read", parse_client),
    "invoice": ("invoices/invoices", "invoices", "user:invoices:read", parse_invoice),
    "payment": ("payments/payments", "payments", "user:payments:read", parse_payment),
}


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(f"{name} must be a timezone-aware datetime (got naive {value.isoformat()})")
    return value.astimezone(timezone.utc)


def _id_chunks(ids: list[int]) -> Iterator[Params]:
    for start in range(0, len(ids), IDS_PER_REQUEST):
        yield [("search[invoiceids][]", int(i)) for i in ids[start : start + IDS_PER_REQUEST]]


class FreshBooksHook(BaseHook):
    """Read FreshBooks clients, invoices and payments; manage webhooks.

    :param freshbooks_conn_id: the ``freshbooks`` connection (login = client id, password = client secret,
        host = API base URL, extras ``redirect_uri``, ``account_id``, ``webhook_verifier``, ``scopes``).
    :param state: the state DB holding the token pair; default ``StateDB.from_airflow(state_conn_id)``.
    :param state_conn_id: connection of the state DB when ``state`` is not given.
    :param per_page: page size (FreshBooks caps it at 100).
    :param page_concurrency: pages of a listing in flight at once (1 = one after the other). Pages are still
        yielded in order and at most this many are held in memory.
    :param policy: retry policy of API calls (429/5xx/connection errors).
    :param timeout: ``(connect, read)`` seconds per request.
    :param sleep: replaces ``time.sleep`` between retries (tests pin or record the backoff).
    """

    conn_name_attr = "freshbooks_conn_id"
    default_conn_name = "freshbooks_default"
    conn_type = "freshbooks"
    hook_name = "FreshBooks"

    def __init__(
        self,
        freshbooks_conn_id: str = default_conn_name,
        *,
        state: StateDB | None = None,
        state_conn_id: str = DEFAULT_CONN_ID,
        per_page: int = MAX_PER_PAGE,
        page_concurrency: int = PAGE_CONCURRENCY,
        policy: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__()
        self.freshbooks_conn_id = freshbooks_conn_id
        self.state_conn_id = state_conn_id
        self.per_page = max(1, min(per_page, MAX_PER_PAGE))
        self.page_concurrency = max(1, page_concurrency)
        self._state = state
        self._policy = policy
        self._timeout = timeout
        self._sleep = sleep
        self._account_id: str | None = None

    # -- wiring ------------------------------------------------------------------------------------------

    @cached_property
    def creds(self) -> FreshBooksCreds:
        """The connection, parsed once."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        conn_id = self.freshbooks_conn_id
        try:
            conn = self.get_connection(conn_id)
        except AirflowNotFoundException:
            raise ConfigError(
                f"FreshBooks connection {conn_id!r} is not defined; add it with: airflow connections add "
                f"{conn_id} --conn-type freshbooks --conn-login CLIENT_ID --conn-password CLIENT_SECRET "
                '--conn-host https://api.freshbooks.com --conn-extra \'{"redirect_uri": "https://…"}\' '
                f"(or set AIRFLOW_CONN_{conn_id.upper()} to the same as JSON)"
            ) from None
        creds = FreshBooksCreds.from_connection(conn)
        mask(creds.client_secret, creds.webhook_verifier)
        return creds

    def _client(self, policy: RetryPolicy | None, timeout: tuple[float, float]) -> HttpClient:
        kwargs: dict[str, Any] = {"policy": policy, "timeout": timeout}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        client = HttpClient(self.creds.base_url, **kwargs)
        client.add_secret(self.creds.client_secret, self.creds.webhook_verifier)
        return client

    @cached_property
    def http(self) -> HttpClient:
        """The client for API calls."""
        return self._client(self._policy, self._timeout)

    def get_conn(self) -> HttpClient:
        return self.http

    @cached_property
    def state(self) -> StateDB:
        if self._state is None:
            from airflow_provider_fbmkto.state import StateDB

            self._state = StateDB.from_airflow(conn_id=self.state_conn_id)
        return self._state

    @cached_property
    def tokens(self) -> TokenManager:
        """Token pair lifecycle; token calls use a short retry policy so a refresh ends within the lock lease."""
        token_http = self._client(RetryPolicy(attempts=2, base=0.5, cap=5.0, max_retry_after=20.0), (10.0, 30.0))
        return TokenManager(self.creds, token_http, self.state.tokens, protect=self.http.add_secret)

    def authorize_url(self, state: str | None = None) -> str:
        """The FreshBooks page where a user grants access (redirects to ``redirect_uri?code=…``)."""
        return self.tokens.authorize_url(state)

    def exchange_code(self, code: str) -> TokenPair:
        """Exchange a one-time authorization code and store the first token pair (encrypted) in the state DB."""
        return self.tokens.exchange_code(code)

    # -- requests ----------------------------------------------------------------------------------------

    def _headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Api-Version": "alpha", "Accept": "application/json"}

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        scope: str | None = None,
        params: Params | None = None,
        json: Any = None,
        ok: tuple[int, ...] = (200,),
    ) -> requests.Response:
        """Send with the current token; on 401 refresh once (under the lock) and resend once."""
        token = self.tokens.access_token()
        response = self.http.request(method, path, params=params, json=json, headers=self._headers(token))
        if response.status_code == 401:
            response.close()
            token = self.tokens.after_unauthorized(token)
            response = self.http.request(method, path, params=params, json=json, headers=self._headers(token))
        if response.status_code not in ok:
            raise api_error(
                response,
                what=what,
                conn_id=self.freshbooks_conn_id,
                redact=self.http.redact,
                needed_scope=scope,
                granted_scopes=self.tokens.granted_scopes,
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"FreshBooks {kwargs['what']} answered non-JSON", status=response.status_code) from None

    @staticmethod
    def _result(body: Any, what: str) -> dict[str, Any]:
        try:
            result = body["response"]["result"]
        except (KeyError, TypeError):
            raise ApiError(f"FreshBooks {what} answered without a response.result envelope") from None
        if not isinstance(result, dict):
            raise ApiError(f"FreshBooks {what} answered an unexpected result")
        return result

    def _account_path(self, tail: str) -> str:
        return f"/accounting/account/{self.account_id}/{tail}"

    def _pages(self, path: str, key: str, params: Params, *, what: str, scope: str | None) -> Iterator[dict[str, Any]]:
        """Objects of a list endpoint, page by page, in order (see :func:`.freshbooks_paging.paged`).

        Every request names ``per_page``: FreshBooks' default page size (documented as 15) is never relied on.
        """

        def fetch(page: int) -> dict[str, Any]:
            query = [*params, ("page", page), ("per_page", self.per_page)]
            return self._result(self._json("GET", path, what=what, scope=scope, params=query), what)

        return paged(fetch, key, self.page_concurrency)

    # -- identity ----------------------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """``users/me``: the authorized user with ``business_memberships``."""
        body = self._json("GET", IDENTITY_PATH, what="GET users/me", scope="user:profile:read")
        result = body.get("response", body) if isinstance(body, dict) else {}
        if not isinstance(result, dict):
            raise ApiError("FreshBooks users/me answered an unexpected body")
        return result

    @property
    def account_id(self) -> str:
        """The connection's ``account_id``, or the one discovered from ``users/me`` (if only one)."""
        if self._account_id is None:
            self._account_id = self.creds.account_id or account_id_from_identity(
                self.identity(), self.freshbooks_conn_id
            )
        return self._account_id

    # -- reading -----------------------------------------------------------------------------------------

    def _iter(
        self,
        kind: str,
        params: Params,
        since: datetime | None,
        until: datetime | None,
        include_deleted: bool,
    ) -> Iterator[Any]:
        """Validate eagerly, then page lazily (a bad argument fails at the call, not at the first ``next``)."""
        since, until = _aware(since, "updated_since"), _aware(until, "updated_until")
        window: Params = []
        if since is not None and until is not None and until < since:
            raise ConfigError(f"updated_until ({until.isoformat()}) is before updated_since ({since.isoformat()})")
        if since is not None:
            window.append(("search[updated_min]", search_days(Window(since, until or since))[0].isoformat()))
        if until is not None:
            window.append(("search[updated_max]", search_days(Window(since or until, until))[1].isoformat()))
        passes: list[Params] = [[*params, *window]]
        if include_deleted:
            passes.append([*params, *window, ("search[vis_state]", 1)])
        return self._records(kind, passes, since, until)

    def _records(
        self, kind: str, passes: list[Params], since: datetime | None, until: datetime | None
    ) -> Iterator[Any]:
        tail, key, scope, parse = _KINDS[kind]
        path = self._account_path(tail)
        for query in passes:
            for obj in self._pages(path, key, query, what=f"GET {key}", scope=scope):
                record = parse(obj)
                if (since is None or since <= record.updated) and (until is None or record.updated < until):
                    yield record

    def iter_clients(
        self,
        updated_since: datetime | None = None,
        updated_until: datetime | None = None,
        include_deleted: bool = False,
    ) -> Iterator[Client]:
        """Clients whose ``updated`` lies in ``[updated_since, updated_until)`` (aware datetimes; None = open).

        Archived clients are included (check ``vis_state``); deleted ones only with ``include_deleted``.
        """
        return self._iter("client", [], updated_since, updated_until, include_deleted)

    def iter_invoices(
        self,
        updated_since: datetime | None = None,
        updated_until: datetime | None = None,
        include_deleted: bool = False,
        *,
        invoice_ids: Iterable[int] | None = None,
    ) -> Iterator[Invoice]:
        """Invoices updated in the window (same rules as :meth:`iter_clients`).

        :param invoice_ids: only these invoices (e.g. refreshing the invoices of changed payments), requested
            100 ids a call; with ``include_deleted`` the ids not found are then asked for among deleted ones.
        """
        if invoice_ids is None:
            return self._iter("invoice", [], updated_since, updated_until, include_deleted)
        return self._iter_ids(list(invoice_ids), updated_since, updated_until, include_deleted)

    def _iter_ids(
        self, ids: list[int], since: datetime | None, until: datetime | None, include_deleted: bool
    ) -> Iterator[Invoice]:
        """The invoices of ``ids``, ``IDS_PER_REQUEST`` ids a call; deleted ones (``include_deleted``) are asked
        for afterwards, only among the ids the first calls did not return (mostly none: no extra call)."""
        wanted = sorted(set(ids))
        missing: set[int] = set(wanted)
        for chunk in _id_chunks(wanted):
            for invoice in self._iter("invoice", chunk, since, until, False):
                missing.discard(invoice.id)
                yield invoice
        if include_deleted:
            for chunk in _id_chunks(sorted(missing)):
                yield from self._iter("invoice", [*chunk, ("search[vis_state]", 1)], since, until, False)

    def iter_invoices_by_date(self, start: date, end: date, include_deleted: bool = False) -> Iterator[Invoice]:
        """Invoices whose invoice date (``create_date``) lies in ``[start, end)`` -- the "sent" selection.

        The search asks one day more on each side (FreshBooks' bound inclusiveness is not documented) and
        the exact half-open filter is applied here.
        """
        params: Params = [
            ("search[date_min]", (start - timedelta(days=1)).isoformat()),
            ("search[date_max]", (end + timedelta(days=1)).isoformat()),
        ]
        for invoice in self._iter("invoice", params, None, None, include_deleted):
            if start <= invoice.create_date < end:
                yield invoice

    def iter_payments(
        self,
        updated_since: datetime | None = None,
        updated_until: datetime | None = None,
        include_deleted: bool = False,
    ) -> Iterator[Payment]:
        """Payments updated in the window (same rules as :meth:`iter_clients`)."""
        return self._iter("payment", [], updated_since, updated_until, include_deleted)

    def _get_one(self, kind: str, object_id: int) -> Any:
        tail, _key, scope, parse = _KINDS[kind]
        what = f"GET {kind} {int(object_id)}"
        result = self._result(
            self._json("GET", self._account_path(f"{tail}/{int(object_id)}"), what=what, scope=scope), what
        )
        obj = result.get(kind)
        if not isinstance(obj, dict):
            raise ApiError(f"FreshBooks {what} answered without a {kind!r} object")
        return parse(obj)

    def get_client(self, client_id: int) -> Client:
        """One client by id (deleted ones too); HTTP 404 raises :class:`ApiError` with ``status=404``."""
        result: Client = self._get_one("client", client_id)
        return result

    def get_invoice(self, invoice_id: int) -> Invoice:
        """One invoice by id."""
        result: Invoice = self._get_one("invoice", invoice_id)
        return result

    def get_payment(self, payment_id: int) -> Payment:
        """One payment by id."""
        result: Payment = self._get_one("payment", payment_id)
        return result

    # -- webhooks ----------------------------------------------------------------------------------------

    @cached_property
    def webhooks(self) -> FreshBooksWebhooks:
        """The callback management of this connection (the methods below are its short names)."""
        return FreshBooksWebhooks(
            request_json=self._json,
            request=self._call,
            result=self._result,
            pages=self._pages,
            account_id=lambda: self.account_id,
            add_secret=lambda value: self.http.add_secret(value),
        )

    def register_webhook(self, event: str, uri: str) -> Webhook:
        """Create a callback for ``event`` posting to ``uri`` (:meth:`FreshBooksWebhooks.register`)."""
        return self.webhooks.register(event, uri)

    def list_webhooks(self) -> Iterator[Webhook]:
        """Registered callbacks."""
        return self.webhooks.list()

    def verify_webhook(self, callback_id: int, verifier: str) -> Webhook:
        """Confirm a callback with the verifier FreshBooks delivered to the receiver."""
        return self.webhooks.verify(callback_id, verifier)

    def resend_verification(self, callback_id: int) -> Webhook:
        """Ask FreshBooks to send the ``callback.verify`` request again."""
        return self.webhooks.resend_verification(callback_id)

    def delete_webhook(self, callback_id: int) -> None:
        """Delete a callback."""
        self.webhooks.delete(callback_id)

    # -- connection test ---------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Call ``users/me`` with the stored access token; never spends the single-use refresh token."""
        try:
            conn_id = self.creds.conn_id
            pair = self.tokens.stored()
            if pair is None:
                return (
                    False,
                    f"No FreshBooks token pair is stored for {conn_id!r}; run: fbmkto authorize --conn-id {conn_id}",
                )
            if pair.expires_within(0):
                return False, (
                    f"The stored FreshBooks access token of {conn_id!r} has expired; the next sync task refreshes it, "
                    f"or run: fbmkto authorize --conn-id {conn_id} (this test never spends the refresh token)"
                )
            response = self.http.request("GET", IDENTITY_PATH, headers=self._headers(pair.access_token))
            if response.status_code != 200:
                error = api_error(response, what="GET users/me", conn_id=conn_id, redact=self.http.redact)
                return False, str(error)
            me = response.json().get("response") or {}
            listed = [f"{b.get('name') or '?'} (account {b.get('account_id')})" for b in businesses(me)]
            who = me.get("email") or me.get("id") or "?"
            return True, f"Connected to FreshBooks as {who}; businesses: {', '.join(listed) or 'none'}"
        except (FbmktoError, ValueError) as exc:
            return False, str(exc)
