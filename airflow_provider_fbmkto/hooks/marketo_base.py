"""The core of :class:`~airflow_provider_fbmkto.hooks.marketo.MarketoHook`: connection, token, one call, batches.

Every call goes through the one retry layer, :class:`~airflow_provider_fbmkto.http.HttpClient`, with a
``guard`` (the instance's shared rate-limiter slot plus one call of the daily budget) and a ``classify`` built on
:func:`~airflow_provider_fbmkto.hooks.marketo_types.classify_answer`. See the ``marketo`` module for limits,
pools and CRM-synced instances.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import requests
from airflow.sdk import BaseHook

from airflow_provider_fbmkto.exceptions import ApiError, AuthError, ConfigError, QuotaExhausted, TransportError
from airflow_provider_fbmkto.hooks.connection_values import mask
from airflow_provider_fbmkto.hooks.marketo_auth import (
    IDENTITY_PATH,
    TOKENS,
    CachedToken,
    cache_entry,
    identity_form,
    identity_scope,
    read_identity,
)
from airflow_provider_fbmkto.hooks.marketo_limits import (
    MarketoRateLimiter,
    limiter_for,
    quota_stopped,
    stop_until_reset,
)
from airflow_provider_fbmkto.hooks.marketo_types import (
    MAX_BODY_BYTES,
    MAX_RECORDS,
    MAYBE_APPLIED_CODES,
    NOT_COUNTED_CODES,
    MarketoCreds,
    Reason,
    RecordResult,
    Verdict,
    chunks,
    classify_answer,
    dumps,
    envelope_codes,
    envelope_message,
    raise_for_envelope,
)
from airflow_provider_fbmkto.http import HttpClient, RetryDecision, RetryPolicy, parse_retry_after
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID
from airflow_provider_fbmkto.sync import jsontext

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.budget import CallBudget

#: URLs longer than this are sent as POST with ``_method=GET`` (Marketo answers 414 above 8 KB).
MAX_URL_CHARS = 7_000
#: Wait after 1029 (bulk export queue full), in seconds (scaled).
QUEUE_FULL_WAIT = 60.0

BatchCallback = Callable[[list[RecordResult]], None]
_MAYBE_APPLIED = "; it may have been applied, so it was not resent"


class _TooLarge(Exception):
    """HTTP 413: the body was over Marketo's limit (internal: the batcher splits and resends)."""


class _UriTooLong(Exception):
    """HTTP 414 (internal: the reader resends as POST with ``_method=GET``)."""


@dataclass(slots=True)
class _CallState:
    idempotent: bool
    token: str | None = None
    refreshed: bool = False
    #: a transient answer was not retried because the (non-idempotent) call may have been applied
    maybe_applied: bool = False
    #: the last answer the classifier decoded and its JSON (``None``: not JSON), so the caller decodes it once
    decoded: tuple[requests.Response, Any] | None = None


class MarketoBaseHook(BaseHook):
    """Connection, token, limits, one call and batched writes; the domain methods are on ``MarketoHook``.

    :param marketo_conn_id: the ``marketo`` connection.
    :param state_conn_id: connection of the state DB that holds the shared daily call budget.
    :param budget: the daily call budget to use instead (tests, benchmarks).
    :param sleep: the retry layer's sleep (tests).
    """

    conn_name_attr = "marketo_conn_id"
    default_conn_name = "marketo_default"
    conn_type = "marketo"
    hook_name = "Marketo"

    def __init__(
        self,
        marketo_conn_id: str = default_conn_name,
        *,
        state_conn_id: str = DEFAULT_CONN_ID,
        budget: CallBudget | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.marketo_conn_id = marketo_conn_id
        self.state_conn_id = state_conn_id
        self._budget = budget
        self._sleep = sleep
        #: set once Marketo answered 1018: companies are owned by a CRM sync
        self.crm_synced = False
        #: calls other integrations made today on the instance (see ``MarketoHook.count_other_integrations``)
        self.others_today = 0
        #: the account whose calls these are (counted per account in the state DB), and its daily share
        self.account: str | None = None
        self.share: float | None = None

    # -- connection, client, limits ---------------------------------------------------------------------

    @cached_property
    def creds(self) -> MarketoCreds:
        from airflow.sdk.exceptions import AirflowNotFoundException

        conn_id = self.marketo_conn_id
        try:
            conn = self.get_connection(conn_id)
        except AirflowNotFoundException:
            raise ConfigError(
                f"Marketo connection {conn_id!r} is not defined; add it with: airflow connections add {conn_id} "
                "--conn-type marketo --conn-host https://<munchkin id>.mktorest.com --conn-login CLIENT_ID "
                f"--conn-password CLIENT_SECRET (or set AIRFLOW_CONN_{conn_id.upper()} to the same as JSON)"
            ) from None
        creds = MarketoCreds.from_connection(conn)
        mask(creds.client_secret)
        return creds

    @cached_property
    def http(self) -> HttpClient:
        scale = self.creds.time_scale
        client = HttpClient(
            self.creds.base_url,
            policy=RetryPolicy(attempts=5, base=0.5 * scale, cap=30.0 * scale, max_retry_after=300.0),
            timeout=(10.0, self.creds.request_timeout),
            sleep=self._sleep,
        )
        pool = max(10, self.creds.max_concurrency * 2)
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=pool)
        client.session.mount("http://", adapter)
        client.session.mount("https://", adapter)
        client.add_secret(self.creds.client_secret)
        return client

    @cached_property
    def limiter(self) -> MarketoRateLimiter:
        c = self.creds
        return limiter_for(c.instance, c.calls_per_window, c.window_seconds, c.max_concurrency)

    @cached_property
    def budget(self) -> CallBudget:
        if self._budget is not None:
            return self._budget
        from airflow_provider_fbmkto.state import StateDB

        return StateDB.from_airflow(conn_id=self.state_conn_id).budget

    @property
    def instance(self) -> str:
        """The Marketo instance this hook writes to (host[:port]): the key of its limits and budget."""
        return self.creds.instance

    def get_conn(self) -> HttpClient:
        return self.http

    def budget_used(self) -> int:
        """Calls spent today (Marketo day) on this instance by every process sharing the state DB."""
        return self.budget.used(self.instance)

    def charge_to(self, account: str, share: float | None = None) -> None:
        """Count this hook's calls for ``account`` and, with a ``share`` (0 < share <= 1), stop them
        (:class:`~airflow_provider_fbmkto.state.budget.ShareExhausted`) once the account has spent that share of
        the instance's usable budget today (:attr:`share_limit`)."""
        self.account, self.share = account, share

    @property
    def usable_today(self) -> int:
        """The instance's usable budget today: ``daily_budget - budget_reserve`` less other integrations' calls."""
        return max(0, self.creds.budget_limit - self.others_today)

    @property
    def share_limit(self) -> int | None:
        """The account's calls allowed today (its share of :attr:`usable_today`), or None without a share."""
        return None if self.share is None else int(self.share * self.usable_today)

    def share_left(self) -> int | None:
        """Calls the account may still spend today under its share (None without a share)."""
        limit = self.share_limit
        if limit is None or self.account is None:
            return None
        return max(0, limit - self.budget.used_by_accounts(self.instance).get(self.account, 0))

    # -- token ------------------------------------------------------------------------------------------

    @property
    def _token_key(self) -> tuple[str, str]:
        return (self.creds.instance, self.creds.client_id)

    def _token(self) -> str:
        entry = TOKENS.get(self._token_key)
        if entry is None:
            with TOKENS.fetch_lock(self._token_key):
                entry = TOKENS.get(self._token_key)
                if entry is None:
                    entry = self._fetch_token()
                    TOKENS.put(self._token_key, entry)
        self.http.add_secret(entry.token)
        return entry.token

    def _fetch_token(self) -> CachedToken:
        """Ask the identity endpoint; a nearly dead token (Marketo answers the same one) is waited out."""
        for attempt in range(2):
            response = self.http.request(
                "POST", IDENTITY_PATH, data=identity_form(self.creds), idempotent=True, guard=self.limiter.slot
            )
            try:
                body = response.json()
            except ValueError:
                body = None
            token, ttl = read_identity(response.status_code, body, self.creds)
            self.http.add_secret(token)
            mask(token)
            entry = cache_entry(token, ttl, scale=self.creds.time_scale, now=time.monotonic(), last_try=attempt == 1)
            if entry is not None:
                return replace(entry, scope=identity_scope(body))
            self.log.info("Marketo token of %s has %.1fs left; waiting for a new one", self.instance, ttl)
            self._sleep(ttl + 1.0)  # expires_in is whole seconds, rounded down
        raise AssertionError("unreachable")  # pragma: no cover

    # -- one REST call ----------------------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if quota_stopped(self.instance):
            raise self._quota_error()
        try:
            self.budget.spend(
                self.instance, 1, limit=self.usable_today, account=self.account, account_limit=self.share_limit
            )
        except QuotaExhausted as exc:
            from airflow_provider_fbmkto.state.budget import BudgetExhausted, ShareExhausted

            if not isinstance(exc, BudgetExhausted) or isinstance(exc, ShareExhausted) or not self.others_today:
                raise
            raise BudgetExhausted(
                f"{exc.message}; that limit leaves out the {self.others_today} calls other integrations made on the "
                "instance today (Marketo's stats/usage.json): the daily quota is shared",
                instance=exc.instance,
                used=exc.used,
                limit=exc.limit,
                resets_at=exc.resets_at,
            ) from None
        with self.limiter.slot():
            yield

    def _quota_error(self) -> QuotaExhausted:
        return QuotaExhausted(
            f"Marketo daily API quota (607) is exhausted for {self.creds.base_url}; nothing more will be sent "
            "until it resets at midnight US/Central",
            code="607",
        )

    def _classifier(self, state: _CallState) -> Callable[[requests.Response], RetryDecision | None]:
        def classify(response: requests.Response) -> RetryDecision | None:
            codes: list[str] = []
            message = ""
            if response.status_code == 200 and "json" in response.headers.get("Content-Type", ""):
                try:
                    body = jsontext.loads(response.content)
                except ValueError:
                    body = None
                state.decoded = (response, body)
                if body is None and state.idempotent:  # cut short on its way: a read is simply sent again
                    return RetryDecision("Marketo answer is not JSON")
                codes = envelope_codes(body)
                message = envelope_message(body) if codes else ""
            if set(codes) & NOT_COUNTED_CODES:
                self.budget.refund(self.instance, 1, account=self.account)
            verdict = classify_answer(response.status_code, codes, message)
            retry_after = parse_retry_after(response.headers.get("Retry-After")) or 0.0
            reason = f"Marketo {','.join(codes) or f'HTTP {response.status_code}'}"
            if verdict is Verdict.QUOTA:
                stop_until_reset(self.instance)
                raise self._quota_error()
            if verdict is Verdict.TOKEN:
                if state.refreshed:
                    return None
                state.refreshed = True
                TOKENS.invalidate(self._token_key, state.token)
                return RetryDecision(f"{reason}: new token")
            if verdict is Verdict.RATE:
                wait = self.limiter.window_remaining()
                self.limiter.pause(wait)
                return RetryDecision(reason, max(wait, retry_after))
            if verdict is Verdict.BACKOFF:
                if not state.idempotent and (
                    set(codes) & MAYBE_APPLIED_CODES or response.status_code in (500, 502, 504)
                ):
                    state.maybe_applied = True  # resending could write twice (activities have no idempotency key)
                    return None
                return RetryDecision(reason, retry_after)
            if verdict is Verdict.QUEUE_FULL:
                return RetryDecision(reason, QUEUE_FULL_WAIT * self.creds.time_scale)
            return None

        return classify

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one call through the retry layer; raise typed errors for HTTP failures (not envelopes)."""
        return self._exchange(method, path, **kwargs)[0]

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        body: bytes | None = None,
        form: list[tuple[str, Any]] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
    ) -> tuple[requests.Response, _CallState]:
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        state = _CallState(idempotent)

        def headers() -> dict[str, str]:
            state.token = self._token()
            hdrs = {"Authorization": f"Bearer {state.token}"}
            if body is not None:
                hdrs["Content-Type"] = "application/json"
            return hdrs

        response = self.http.request(
            method,
            path,
            params=params,
            data=body if body is not None else form,
            headers=headers,
            idempotent=idempotent,
            classify=self._classifier(state),
            guard=self._guard,
            stream=stream,
        )
        status = response.status_code
        if status == 413:
            raise _TooLarge
        if status == 414:
            raise _UriTooLong
        if status == 401:
            raise AuthError(f"Marketo {method} {path}: HTTP 401; check the API user's role", status=401)
        if status == 429 or (status >= 400 and status != 404):
            raise ApiError(
                f"Marketo {method} {path}: HTTP {status}{_MAYBE_APPLIED if state.maybe_applied else ' after retries'}",
                status=status,
                retryable=status == 429 or status >= 500,
            )
        return response, state

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One call whose answer is a JSON envelope; an unsuccessful envelope raises its typed error."""
        response, state = self._exchange(method, path, **kwargs)
        if state.decoded is not None and state.decoded[0] is response:  # the classifier read it already
            body = state.decoded[1]
        else:
            try:
                body = jsontext.loads(response.content)
            except ValueError:
                body = None
        if not isinstance(body, dict):
            if response.status_code == 200:  # Marketo took the call but its answer is unreadable: it may have acted
                raise TransportError(
                    f"Marketo {method} {path}: HTTP 200 answer is not a JSON object (cut short, or not from Marketo); "
                    "the call may have been applied",
                    sent=True,
                )
            raise ApiError(
                f"Marketo {method} {path}: HTTP {response.status_code} answer is not a JSON object",
                status=response.status_code,
            )
        raise_for_envelope(
            method,
            path,
            body,
            response.status_code,
            redact=self.http.redact,
            note=_MAYBE_APPLIED if state.maybe_applied else "",
            base_url=self.creds.base_url,
        )
        return body

    def _read(self, path: str, params: list[tuple[str, Any]]) -> dict[str, Any]:
        """A read; sent as POST with ``_method=GET`` and a form body when the URL would be too long."""
        if len(self.http.url(path)) + 1 + len(urlencode(params)) <= MAX_URL_CHARS:
            try:
                return self._call("GET", path, params=params)
            except _UriTooLong:
                pass
        return self._call("POST", path, params=[("_method", "GET")], form=params, idempotent=True)

    def _read_pages(self, path: str, params: list[tuple[str, Any]]) -> Iterator[dict[str, Any]]:
        """Every ``result`` entry over ``nextPageToken`` pages, until ``moreResult`` is false."""
        token: str | None = None
        while True:
            body = self._read(path, params + ([("nextPageToken", token)] if token else []))
            yield from body.get("result") or []
            token = body.get("nextPageToken")
            if not body.get("moreResult") or not token:
                return

    # -- batched writes ---------------------------------------------------------------------------------

    def _write(
        self,
        method: str,
        path: str,
        records: Iterable[Mapping[str, Any]],
        envelope: Callable[[list[Any]], dict[str, Any]],
        *,
        max_records: int = MAX_RECORDS,
        stop_codes: frozenset[str] = frozenset(),
        on_batch: BatchCallback | None = None,
        idempotent: bool | None = None,
    ) -> list[RecordResult]:
        """Send ``records`` in batches of ≤ ``max_records`` and < 1 MB; one result per input, by index.

        A response-level error with a code in ``stop_codes`` marks that batch and every later one ``skipped``
        with Marketo's reason, and nothing more is sent.
        """
        items = list(records)
        results: list[RecordResult] = []
        stopped: tuple[Reason, ...] = ()
        for start, chunk in chunks(items, envelope, max_records):
            if not stopped:
                try:
                    batch = self._send_batch(method, path, start, chunk, envelope, idempotent)
                except ApiError as exc:
                    if exc.code not in stop_codes:
                        raise
                    stopped = (Reason(exc.code or "", exc.message),)
            if stopped:
                batch = [RecordResult(start + i, None, "skipped", stopped) for i in range(len(chunk))]
            results.extend(batch)
            if on_batch is not None:
                on_batch(batch)
        results.sort(key=lambda r: r.index)
        return results

    def _send_batch(
        self,
        method: str,
        path: str,
        start: int,
        chunk: list[Any],
        envelope: Callable[[list[Any]], dict[str, Any]],
        idempotent: bool | None,
    ) -> list[RecordResult]:
        data = dumps(envelope(chunk))
        try:
            if len(data) > MAX_BODY_BYTES:
                raise _TooLarge
            body = self._call(method, path, body=data, idempotent=idempotent)
        except _TooLarge:
            if len(chunk) == 1:
                return [RecordResult.skipped(start, "413", "record is over Marketo's 1 MB request limit; not sent")]
            mid = len(chunk) // 2
            self.log.info("%d records are over the 1 MB limit; sending them in two halves", len(chunk))
            return self._send_batch(method, path, start, chunk[:mid], envelope, idempotent) + self._send_batch(
                method, path, start + mid, chunk[mid:], envelope, idempotent
            )
        entries = body.get("result") or []
        by_index: dict[int, RecordResult] = {}
        for position, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            offset = entry.get("seq", position)
            if isinstance(offset, int) and 0 <= offset < len(chunk):
                by_index[offset] = RecordResult.from_marketo(start + offset, entry)
        return [
            by_index.get(i) or RecordResult.skipped(start + i, "", "Marketo answered no result for this record")
            for i in range(len(chunk))
        ]
