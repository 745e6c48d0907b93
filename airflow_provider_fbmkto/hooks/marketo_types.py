"""Typed values of the Marketo hook: the parsed connection, per-record results, export states, errors.

The one pure verdict on a Marketo answer (:func:`classify_answer`, defined in ``marketo_errors`` with the codes
and typed errors, re-exported here), shared by the sync hook (through
:class:`~airflow_provider_fbmkto.http.HttpClient`'s ``classify``) and the async bulk-export trigger, so the
two never disagree on what is retried.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_fbmkto.exceptions import ApiError, ConfigError
from airflow_provider_fbmkto.hooks.connection_values import base_url
from airflow_provider_fbmkto.hooks.marketo_errors import (
    CRM_SYNCED_CODE,
    INVALID_SUBSCRIPTION_CODE,
    MAYBE_APPLIED_CODES,
    NO_UPDATED_AT_FILTER_CODE,
    NOT_COUNTED_CODES,
    OBJECT_NOT_FOUND_CODE,
    QUEUE_FULL_CODE,
    QUOTA_CODE,
    RATE_CODES,
    TOKEN_CODES,
    TRANSIENT_CODES,
    BulkExportError,
    BulkExportFilterUnsupported,
    CrmSyncedCompanies,
    ExportAlreadyQueued,
    ExportQuotaExhausted,
    InvalidSubscription,
    Verdict,
    classify_answer,
    envelope_codes,
    envelope_message,
    raise_for_envelope,
)
from airflow_provider_fbmkto.sync import jsontext

#: Re-exported: the answer codes, the verdict and the typed errors live in ``marketo_errors``.
__all__ = [
    "CRM_SYNCED_CODE",
    "INVALID_SUBSCRIPTION_CODE",
    "MAYBE_APPLIED_CODES",
    "NOT_COUNTED_CODES",
    "NO_UPDATED_AT_FILTER_CODE",
    "OBJECT_NOT_FOUND_CODE",
    "QUEUE_FULL_CODE",
    "QUOTA_CODE",
    "RATE_CODES",
    "TOKEN_CODES",
    "TRANSIENT_CODES",
    "BulkExportError",
    "BulkExportFilterUnsupported",
    "CrmSyncedCompanies",
    "ExportAlreadyQueued",
    "ExportQuotaExhausted",
    "InvalidSubscription",
    "Verdict",
    "classify_answer",
    "envelope_codes",
    "envelope_message",
    "raise_for_envelope",
]

CONN_TYPE = "marketo"
_UI_PREFIX = "extra__marketo__"

#: Marketo's batch limit (records per write call) and our body limit (Marketo answers 413 above 1 MB).
MAX_RECORDS = 300
MAX_BODY_BYTES = 1_000_000
#: Marketo's longest bulk export window.
MAX_EXPORT_DAYS = 31

RecordStatus = Literal["created", "updated", "added", "removed", "skipped"]
_STATUSES: frozenset[str] = frozenset({"created", "updated", "added", "removed", "skipped"})


@dataclass(frozen=True, slots=True)
class Reason:
    """Why Marketo skipped a record: its code (string, as Marketo sends it) and message."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What happened to one input record of a batch call.

    :param index: the record's position in the caller's input (0-based).
    :param id: Marketo's id of the lead/company/activity, when it answered one.
    :param status: ``created``/``updated``/``added``/``removed``, or ``skipped`` with ``reasons``.
    :param reasons: why it was skipped (Marketo's ``reasons`` or ``errors``).
    """

    index: int
    id: int | None
    status: RecordStatus
    reasons: tuple[Reason, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status != "skipped"

    @classmethod
    def from_marketo(cls, index: int, entry: Mapping[str, Any]) -> RecordResult:
        raw = entry.get("reasons") or entry.get("errors") or ()
        reasons = tuple(
            Reason(str(r.get("code", "")), str(r.get("message", ""))) for r in raw if isinstance(r, Mapping)
        )
        status = str(entry.get("status") or ("skipped" if reasons else "updated"))
        if status not in _STATUSES:
            reasons = (*reasons, Reason("", f"unexpected status {status!r}"))
            status = "skipped"
        raw_id = entry.get("id", entry.get("marketoGUID"))
        try:
            ident = int(raw_id) if raw_id is not None else None
        except (TypeError, ValueError):
            ident = None
        return cls(index, ident, status, reasons)  # type: ignore[arg-type]

    @classmethod
    def skipped(cls, index: int, code: str, message: str) -> RecordResult:
        return cls(index, None, "skipped", (Reason(code, message),))


class ExportState(str, enum.Enum):
    """States of a Marketo bulk export job."""

    CREATED = "Created"
    QUEUED = "Queued"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    def is_terminal(self) -> bool:
        return self in (ExportState.COMPLETED, ExportState.FAILED, ExportState.CANCELLED)


@dataclass(frozen=True, slots=True)
class BulkExportStatus:
    """One status answer of a bulk export job."""

    export_id: str
    state: ExportState
    records: int | None = None
    file_size: int | None = None
    error: str | None = None

    @classmethod
    def from_marketo(cls, entry: Mapping[str, Any]) -> BulkExportStatus:
        try:
            state = ExportState(str(entry.get("status")))
        except ValueError as exc:
            raise ApiError(f"Marketo answered an unknown bulk export state {entry.get('status')!r}") from exc
        return cls(
            export_id=str(entry.get("exportId", "")),
            state=state,
            records=_opt_int(entry.get("numberOfRecords")),
            file_size=_opt_int(entry.get("fileSize")),
            error=str(entry["errorMsg"]) if entry.get("errorMsg") else None,
        )


def _opt_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


#: Calls per 20 s a connection allows by default (see :attr:`MarketoCreds.calls_per_window`).
DEFAULT_CALLS_PER_WINDOW = 97


@dataclass(frozen=True, slots=True)
class MarketoCreds:
    """The ``marketo`` connection, parsed once (host = REST base URL, login = client id, password = secret).

    Defaults keep a safety margin under Marketo's limits (100 calls/20 s, 10 concurrent, 50,000 a day).
    ``window_seconds`` is 20 for the real API; emulators shorten it, and every wait of the hook scales
    with it (:attr:`time_scale`).
    """

    conn_id: str
    base_url: str
    client_id: str
    client_secret: str
    #: The limiter counts each call from its answer, never before Marketo does, so this process alone never has
    #: more than this many in Marketo's window; the 3 of Marketo's 100 left over are for other integrations of
    #: the instance (a 606 they cause is waited out and the call sent again: Marketo applied nothing).
    calls_per_window: int = DEFAULT_CALLS_PER_WINDOW
    window_seconds: float = 20.0
    max_concurrency: int = 8
    daily_budget: int = 45_000
    budget_reserve: int = 0
    request_timeout: float = 60.0

    #: allowed extras and their types (``extra__marketo__<name>`` is accepted too)
    EXTRAS = {
        "calls_per_window": int,
        "window_seconds": float,
        "max_concurrency": int,
        "daily_budget": int,
        "budget_reserve": int,
        "request_timeout": float,
    }

    def __repr__(self) -> str:  # never show the secret
        return f"MarketoCreds(conn_id={self.conn_id!r}, base_url={self.base_url!r}, client_id={self.client_id!r})"

    @property
    def instance(self) -> str:
        """The Marketo instance (host[:port]): the key of its shared limits and daily budget."""
        return urlsplit(self.base_url).netloc.lower()

    @property
    def time_scale(self) -> float:
        """``window_seconds / 20``: 1.0 for the real API, smaller against a fast emulator."""
        return self.window_seconds / 20.0

    @property
    def budget_limit(self) -> int:
        return self.daily_budget - self.budget_reserve

    @classmethod
    def from_connection(cls, conn: Any) -> MarketoCreds:
        """Parse an Airflow connection; a missing field or unknown/bad extra raises :class:`ConfigError`."""
        conn_id = str(getattr(conn, "conn_id", None) or "?")
        missing = [
            name
            for name, attr in (("host", "host"), ("login", "login"), ("password", "password"))
            if not getattr(conn, attr, None)
        ]
        if missing:
            raise ConfigError(
                f"Marketo connection {conn_id!r} has no {', '.join(missing)}: set host = REST base URL "
                "(https://<munchkin>.mktorest.com), login = client id, password = client secret"
            )
        values: dict[str, Any] = {}
        for key, raw in dict(getattr(conn, "extra_dejson", None) or {}).items():
            name = key.removeprefix(_UI_PREFIX)
            if name not in cls.EXTRAS:
                raise ConfigError(
                    f"Marketo connection {conn_id!r} has an unknown extra {key!r}; allowed: {', '.join(cls.EXTRAS)}"
                )
            if raw is None or raw == "":
                continue
            try:
                value = cls.EXTRAS[name](raw)
            except (TypeError, ValueError):
                raise ConfigError(f"Marketo connection {conn_id!r}: extra {name!r} must be a number") from None
            if (value <= 0 and name != "budget_reserve") or value < 0:
                raise ConfigError(f"Marketo connection {conn_id!r}: extra {name!r} must be positive")
            values[name] = value
        creds = cls(
            conn_id,
            base_url(str(conn.host), getattr(conn, "port", None), drop_suffixes=("/rest/v1", "/rest")),
            str(conn.login),
            str(conn.password),
            **values,
        )
        if creds.calls_per_window > 100 or creds.max_concurrency > 10:
            raise ConfigError(
                f"Marketo connection {conn_id!r}: calls_per_window must be <= 100 and max_concurrency <= 10 "
                "(Marketo's own limits); the defaults 97 and 8 leave a safety margin"
            )
        if creds.budget_reserve >= creds.daily_budget:
            raise ConfigError(f"Marketo connection {conn_id!r}: budget_reserve must be below daily_budget")
        return creds


def dumps(payload: Any) -> bytes:
    return jsontext.dumps_bytes(payload)


def chunks(
    items: list[Any], envelope: Callable[[list[Any]], dict[str, Any]], max_records: int
) -> Iterator[tuple[int, list[Any]]]:
    """Consecutive ``(start, chunk)`` with ≤ ``max_records`` items and a JSON body < ``MAX_BODY_BYTES``.

    A record that alone is over the limit becomes a chunk of one (the sender marks it skipped, unsent).
    """
    overhead = len(dumps(envelope([])))
    start, size = 0, overhead
    chunk: list[Any] = []
    for index, item in enumerate(items):
        item_size = len(dumps(item)) + (1 if chunk else 0)
        if chunk and (len(chunk) >= max_records or size + item_size > MAX_BODY_BYTES):
            yield start, chunk
            start, chunk, size = index, [], overhead
            item_size -= 1
        chunk.append(item)
        size += item_size
    if chunk:
        yield start, chunk


def fields_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    result = body.get("result") or []
    if len(result) == 1 and isinstance(result[0], Mapping) and "fields" in result[0]:
        return list(result[0]["fields"])
    return list(result)


def export_windows(start: datetime, end: datetime, days: int = MAX_EXPORT_DAYS) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive windows of at most ``days`` days (for bulk exports)."""
    windows = []
    while start < end:
        stop = min(end, start + timedelta(days=days))
        windows.append((start, stop))
        start = stop
    return windows


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_result(body: Mapping[str, Any]) -> dict[str, Any]:
    result = body.get("result") or []
    if not result or not isinstance(result[0], Mapping):
        raise ApiError("Marketo answered success without a result")
    return dict(result[0])
