"""The one HTTP layer: timeouts, retries with capped exponential backoff and jitter, Retry-After, redaction.

Both hooks send every request through :class:`HttpClient`; nothing else in the provider sleeps to retry.
API-specific knowledge enters only through two small callables a hook passes per request:

* ``classify(response) -> RetryDecision | None`` says whether an answer is worth sending again
  (Marketo hides its rate-limit errors inside HTTP 200, so its hook classifies bodies);
* ``guard()`` is a context manager held around each attempt (the Marketo rate limiter's slot), so a
  retry pays for its call like any other.

Transport errors are classified once, here: a connect failure (nothing reached the server) is always
retried; a read failure (the server may have acted) only when the request is idempotent -- a
non-idempotent write that may have landed is the ledger's business, not a blind retry.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from airflow_provider_fbmkto.exceptions import TransportError

log = logging.getLogger(__name__)

#: Query/form keys whose values never reach a log line or an exception.
SENSITIVE_KEYS = frozenset(
    {"client_secret", "access_token", "refresh_token", "code", "password", "secret", "verifier", "token"}
)
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry.

    :param attempts: retries after the first try (so ``attempts=5`` allows six sends).
    :param base: first backoff in seconds, doubled each retry.
    :param cap: the longest backoff before jitter.
    :param max_retry_after: the longest server-requested wait we honour; longer ones give up.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """A classifier's verdict that an answer is worth retrying.

    :param reason: short text for the log (never a payload).
    :param wait_at_least: a floor for the delay (Retry-After, a rate window's remaining time).
    """

    reason: str
    wait_at_least: float = 0.0


Classifier = Callable[[requests.Response], "RetryDecision | None"]
Guard = Callable[[], AbstractContextManager[object]]


def next_delay(policy: RetryPolicy, n: int, retry_after: float | None, jitter: float) -> float | None:
    """Delay before retry number ``n`` (0-based), or ``None`` when retries are spent.

    Full backoff is ``min(cap, base * 2**n)`` scaled by ``0.5 + jitter/2`` (jitter in ``[0, 1)``) so that
    workers retrying together spread out; a server's Retry-After is a floor, never shortened.
    """
    if n >= policy.attempts:
        return None
    if retry_after is not None and retry_after > policy.max_retry_after:
        return None
    backoff = min(policy.cap, policy.base * 2.0**n) * (0.5 + jitter / 2)
    return max(backoff, retry_after or 0.0)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); ``None`` if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max(0.0, (when - current).total_seconds())


def default_classifier(response: requests.Response) -> RetryDecision | None:
    """Retry 429 and 5xx, honouring Retry-After; everything else is the caller's to interpret."""
    status = response.status_code
    if status == 429 or status >= 500:
        return RetryDecision(f"HTTP {status}", parse_retry_after(response.headers.get("Retry-After")) or 0.0)
    return None


def redact_url(url: str) -> str:
    """The URL with the values of sensitive query keys replaced, safe for logs and messages."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, REDACTED if k.lower() in SENSITIVE_KEYS else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each (non-trivial) secret replaced."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text


@dataclass(slots=True)
class CallStats:
    """What a client sent, for reports and benchmarks: attempts include retries."""

    attempts: int = 0
    retries: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class HttpClient:
    """A ``requests.Session`` with timeouts, one retry loop and redaction.

    :param base_url: prefix for relative paths.
    :param policy: retry policy.
    :param timeout: ``(connect, read)`` seconds; always set, never infinite.
    :param sleep: injectable for tests; the only sleep of the provider's HTTP code.
    :param jitter: returns a float in ``[0, 1)``; injectable so tests can pin the backoff.
    """

    def __init__(
        self,
        base_url: str,
        *,
        policy: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        user_agent: str = "airflow-provider-fbmkto",
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self._sleep = sleep
        self._jitter = jitter
        self._secrets: set[str] = set()
        self.stats = CallStats()

    def add_secret(self, *values: str | None) -> None:
        """Register values (tokens, client secrets) that must be redacted from anything we log or raise."""
        self._secrets.update(v for v in values if v)

    def redact(self, text: str) -> str:
        return redact_text(text, self._secrets)

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | list[tuple[str, Any]] | str | bytes | None = None,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        idempotent: bool | None = None,
        classify: Classifier = default_classifier,
        guard: Guard | None = None,
        stream: bool = False,
        timeout: tuple[float, float] | None = None,
    ) -> requests.Response:
        """Send a request, retrying what is safe to retry; return the final response.

        A response the classifier still wants retried after the policy is spent is returned as it is, for
        the hook to turn into its typed error. Transport failures that cannot be retried raise
        :class:`TransportError` (its ``sent`` says whether the server may have acted).

        :param headers: a mapping, or a callable evaluated per attempt (so a refreshed token is used).
        :param idempotent: defaults to True for GET/HEAD/PUT/DELETE/OPTIONS, False for POST/PATCH.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        url = self.url(path)
        safe_url = redact_url(url)
        n = 0
        while True:
            decision: RetryDecision | None
            response: requests.Response | None = None
            sent = False
            self.stats.attempts += 1
            try:
                with guard() if guard is not None else contextlib.nullcontext():
                    hdrs = headers() if callable(headers) else headers
                    response = self.session.request(
                        method,
                        url,
                        params=params,
                        json=json,
                        data=data,
                        headers=dict(hdrs or {}),
                        timeout=timeout or self.timeout,
                        stream=stream,
                        allow_redirects=False,
                    )
            except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
                if isinstance(exc, requests.exceptions.SSLError):
                    raise TransportError(f"{method} {safe_url}: TLS error; check the host", sent=False) from None
                decision = RetryDecision("connect timeout")
            except requests.ConnectionError as exc:
                sent = _may_have_been_sent(exc)
                decision = RetryDecision(f"connection error ({'after sending' if sent else 'before sending'})")
            except (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError) as exc:
                sent = True
                decision = RetryDecision(f"read failed ({type(exc).__name__})")
            else:
                self.stats.by_status[response.status_code] = self.stats.by_status.get(response.status_code, 0) + 1
                decision = classify(response)
                if decision is None:
                    return response

            if response is None and sent and not idempotent:
                raise TransportError(
                    f"{method} {safe_url}: {decision.reason} after the request was sent; it may have "
                    "been applied, so it is not retried blindly",
                    sent=True,
                )
            delay = next_delay(self.policy, n, decision.wait_at_least or None, self._jitter())
            if delay is None:
                if response is not None:
                    return response
                raise TransportError(
                    f"{method} {safe_url}: {decision.reason}; gave up after {n + 1} attempts", sent=sent
                )
            if response is not None:
                response.close()
            log.warning("%s %s: %s; retry %d in %.2fs", method, safe_url, decision.reason, n + 1, delay)
            self.stats.retries += 1
            self._sleep(delay)
            n += 1


def _may_have_been_sent(exc: requests.ConnectionError) -> bool:
    """False only when the connection was never established (refused, DNS): then nothing was sent."""
    import urllib3.exceptions as u3

    reason: object = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the underlying cause
    return not isinstance(reason, (u3.NewConnectionError, u3.ConnectTimeoutError, u3.NameResolutionError))
