"""What Marketo's answers mean: error codes, the one verdict on an answer, and the typed errors naming the fix.

:func:`classify_answer` (pure) is shared by the sync hook and the async export trigger, so the two never
disagree on what is retried; :func:`raise_for_envelope` turns a final unsuccessful envelope into its typed error.

Marketo answers three different conditions with code ``1029`` and tells them apart only by the message
(documented: "Too many jobs in queue", "Export daily quota exceeded", "Job already queued"):
:func:`export_limit` names which one, so the queue-full one is waited out, the spent daily export allocation
stops at once, and an already queued job is reused. Everything here is re-exported by ``marketo_types``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_fbmkto.exceptions import ApiError, AuthError, ConfigError, QuotaExhausted, RateLimited
from airflow_provider_fbmkto.state.budget import next_reset

#: Marketo answers these codes without counting the call against the daily quota.
NOT_COUNTED_CODES = frozenset({"601", "602", "604", "605", "608", "611"})
TOKEN_CODES = frozenset({"601", "602"})
RATE_CODES = frozenset({"606", "615"})
#: 719 "Lock wait timeout": the call waited too long for a database lock; transient like 713.
TRANSIENT_CODES = frozenset({"604", "608", "611", "713", "719"})
#: Transient codes after which a write may have landed (timeout, system error, lock wait): resent only when
#: idempotent (Marketo does not promise a 719 batch wrote nothing).
MAYBE_APPLIED_CODES = frozenset({"604", "611", "713", "719"})
QUEUE_FULL_CODE = "1029"
QUOTA_CODE = "607"
INVALID_SUBSCRIPTION_CODE = "614"
CRM_SYNCED_CODE = "1018"
OBJECT_NOT_FOUND_CODE = "1013"
NO_UPDATED_AT_FILTER_CODE = "1035"
#: Record-level skip reasons whose cause may go away without the record changing: 1004 lead not found (the person
#: may be created by another source), 1006 field not found (created since), 1008 access denied to the partition
#: (the API user's role widened since), 1013 object not found (e.g. an activity type approved since). Data
#: problems (1001-1003, 1007) are not: the record must change, and a changed record is planned again anyway.
HEALING_SKIP_CODES = frozenset({"1004", "1006", "1008", "1013"})


class CrmSyncedCompanies(ApiError):
    """Companies are read-only through the API because a Salesforce/Dynamics CRM sync owns them (``1018``).

    :meth:`MarketoHook.upsert_companies` raises it only with ``raise_if_crm_synced=True``; by default it marks
    the records ``skipped`` with reason ``1018`` and sets ``hook.crm_synced`` so the caller can degrade to
    lead fields.
    """


class BulkExportFilterUnsupported(ApiError):
    """This Marketo instance has no ``updatedAt`` filter for bulk lead export (``1035``): read by e-mail instead."""


class BulkExportError(ApiError):
    """A bulk export failed, was cancelled, or its file is gone (exports are kept about 7 days)."""


class ExportQuotaExhausted(QuotaExhausted):
    """``1029`` "Export daily quota exceeded": the instance's bulk export allocation for the day (500 MB by
    default, shared by every integration) is spent; no export can be created or queued until midnight US Central.

    :param resets_at: aware UTC time of the next midnight US Central.
    """

    def __init__(self, message: str, *, resets_at: datetime, status: int | None = None) -> None:
        super().__init__(message, status=status, code="1029", retryable=False)
        self.resets_at = resets_at


class ExportAlreadyQueued(ApiError):
    """``1029`` "Job already queued": the export was queued before (by an earlier try whose answer was lost).

    Not a failure: :meth:`MarketoHook.enqueue_export` answers the job's status instead, so the job is reused.
    """


class InvalidSubscription(ApiError, ConfigError):
    """``614`` "Invalid Subscription": Marketo finds no subscription behind this REST base URL.

    A wrong Munchkin id in the connection's host never heals by resending, so it is not retried; Marketo
    documents 614 as usually a temporary inaccessibility when the URL is right, so the message says both.
    """


class ExportLimit(enum.Enum):
    """Which of ``1029``'s conditions an answer reports."""

    QUEUE_FULL = "queue_full"  # "Too many jobs in queue": wait for a slot, then send again
    DAILY_QUOTA = "daily_quota"  # "Export daily quota exceeded": nothing until midnight US Central
    ALREADY_QUEUED = "already_queued"  # "Job already queued": the job exists and runs; reuse it


def export_limit(message: str) -> ExportLimit:
    """The condition of a ``1029`` answer from its message (anything unrecognised reads as the queue-full wait)."""
    text = message.lower()
    if "quota" in text:
        return ExportLimit.DAILY_QUOTA
    if "already" in text:
        return ExportLimit.ALREADY_QUEUED
    return ExportLimit.QUEUE_FULL


class Verdict(enum.Enum):
    """What to do with one Marketo answer."""

    OK = "ok"  # not a transient problem: the hook reads the envelope (success, or a final error)
    TOKEN = "token"  # 601/602: fetch a new token and send again, once
    RATE = "rate"  # 606/615/HTTP 429: wait for the rate window, then send again
    BACKOFF = "backoff"  # 604/608/611/713/5xx: send again after exponential backoff
    QUEUE_FULL = "queue_full"  # 1029 "Too many jobs in queue": the export queue is full; wait long, send again
    QUOTA = "quota"  # 607: the daily quota is spent; send nothing more today


def classify_answer(http_status: int, codes: Sequence[str], message: str = "") -> Verdict:
    """The verdict on an answer from its HTTP status and the envelope's error codes (pure).

    :param message: the envelope's error text (:func:`envelope_message`): ``1029`` is the queue-full wait only
        when its message says so (its daily-quota and already-queued variants are final answers). ``614``
        (invalid subscription) is final: a wrong Munchkin id does not heal by resending.
    """
    if http_status == 429:
        return Verdict.RATE
    if http_status >= 500:
        return Verdict.BACKOFF
    code_set = set(codes)
    if QUOTA_CODE in code_set:
        return Verdict.QUOTA
    if code_set & TOKEN_CODES:
        return Verdict.TOKEN
    if code_set & RATE_CODES:
        return Verdict.RATE
    if code_set & TRANSIENT_CODES:
        return Verdict.BACKOFF
    if QUEUE_FULL_CODE in code_set and export_limit(message) is ExportLimit.QUEUE_FULL:
        return Verdict.QUEUE_FULL
    return Verdict.OK


def envelope_codes(body: Any) -> list[str]:
    """Error codes of a Marketo envelope (strings), or ``[]`` when it has none or is not an envelope."""
    if not isinstance(body, Mapping) or body.get("success", True) is not False:
        return []
    errors = body.get("errors") or []
    return [str(e.get("code")) for e in errors if isinstance(e, Mapping)]


def envelope_message(body: Any) -> str:
    """``"606 Max rate limit …; 1003 …"`` from an envelope's errors (for messages, never with payloads)."""
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not errors:
        return "no error detail"
    return "; ".join(f"{e.get('code')} {e.get('message', '')}".strip() for e in errors if isinstance(e, Mapping))


def raise_for_envelope(
    method: str,
    path: str,
    body: Any,
    status: int,
    *,
    redact: Callable[[str], str] = str,
    note: str = "",
    base_url: str = "",
) -> None:
    """Turn an unsuccessful envelope (after retries) into the typed error naming what to do.

    :param base_url: the connection's REST base URL, named by the 614 (invalid subscription) message.
    """
    codes = envelope_codes(body)
    if not codes:
        return
    detail = redact(envelope_message(body)) + note
    where = f"Marketo {method} {path}"
    if QUEUE_FULL_CODE in codes and not set(codes) & RATE_CODES:
        kind = export_limit(envelope_message(body))
        if kind is ExportLimit.DAILY_QUOTA:
            resets = next_reset()
            raise ExportQuotaExhausted(
                f"{where}: {detail}; the instance's bulk export allocation for today (500 MB unless more was bought, "
                "shared by every integration) is spent: no export can be created or queued until it resets at "
                f"midnight US Central ({resets.isoformat()}); run again after that",
                resets_at=resets,
                status=status,
            )
        if kind is ExportLimit.ALREADY_QUEUED:
            raise ExportAlreadyQueued(f"{where}: {detail}; the job is queued already", status=status, code="1029")
    if INVALID_SUBSCRIPTION_CODE in codes:
        raise InvalidSubscription(
            f"{where}: {detail}; Marketo finds no subscription at {base_url or 'the connection host'}: check that "
            "the connection's host is https://<Munchkin id>.mktorest.com with your instance's Munchkin id (Admin > "
            "Integration > Web Services > REST API > Endpoint); if it is right, Marketo documents 614 as usually "
            "temporary: run again later",
            status=status,
            code=INVALID_SUBSCRIPTION_CODE,
        )
    if set(codes) & RATE_CODES or QUEUE_FULL_CODE in codes:
        raise RateLimited(
            f"{where}: {detail}; still limited after retries, try again later",
            status=status,
            code=codes[0],
            retryable=True,
        )
    if QUOTA_CODE in codes:
        raise QuotaExhausted(f"{where}: {detail}", status=status, code=QUOTA_CODE)
    if set(codes) & TOKEN_CODES:
        raise AuthError(
            f"{where}: {detail}; a fresh token was rejected too, check the API user's role "
            "and that the custom service is active",
            status=status,
            code=codes[0],
        )
    if CRM_SYNCED_CODE in codes:
        raise CrmSyncedCompanies(
            f"{where}: {detail}; companies are owned by the CRM sync, write lead fields instead",
            status=status,
            code=CRM_SYNCED_CODE,
        )
    if NO_UPDATED_AT_FILTER_CODE in codes:
        raise BulkExportFilterUnsupported(
            f"{where}: {detail}; read leads by e-mail instead", status=status, code=NO_UPDATED_AT_FILTER_CODE
        )
    retryable = bool(set(codes) & TRANSIENT_CODES)
    raise ApiError(f"{where}: {detail}", status=status, code=codes[0], retryable=retryable)
