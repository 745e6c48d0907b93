"""Marketo's error codes as exceptions, one class per code, each with Marketo's own message.

A model method raises one of these for a *response-level* error (the whole call failed); the handler
renders it as ``{"success": false, "errors": [{"code": "606", "message": ...}]}`` inside HTTP 200.
Record-level outcomes are not exceptions: they are :class:`Reason` values in a per-record result.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    """One ``{"code", "message"}`` entry of a skipped record (codes are strings, as on the wire)."""

    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MarketoError(Exception):
    """A response-level Marketo error: HTTP 200, ``success: false``, one entry in ``errors``."""

    code: str = "611"
    default_message: str = "System error"
    #: HTTP status of the answer; Marketo answers its errors inside HTTP 200 except where noted.
    http_status: int = 200

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(f"{self.code} {self.message}")

    def reason(self) -> Reason:
        return Reason(self.code, self.message)


class AccessTokenInvalid(MarketoError):
    code, default_message = "601", "Access token invalid"


class AccessTokenExpired(MarketoError):
    code, default_message = "602", "Access token expired"


class RequestTimedOut(MarketoError):
    code, default_message = "604", "Request timed out"


class MethodNotSupported(MarketoError):
    code, default_message = "605", "Request method not supported"


class RateLimitExceeded(MarketoError):
    code, default_message = "606", "Max rate limit '100' exceeded with in '20' secs"


class DailyQuotaReached(MarketoError):
    code, default_message = "607", "Daily quota reached"


class ApiTemporarilyUnavailable(MarketoError):
    code, default_message = "608", "API Temporarily Unavailable"


class InvalidJson(MarketoError):
    code, default_message = "609", "Invalid JSON"


class ResourceNotFound(MarketoError):
    code, default_message = "610", "Requested resource not found"


class SystemError_(MarketoError):
    code, default_message = "611", "System error"


class InvalidContentType(MarketoError):
    code, default_message = "612", "Invalid Content Type"


class ConcurrentAccessLimit(MarketoError):
    code, default_message = "615", "Concurrent access limit reached"


class Blank(MarketoError):
    code, default_message = "701", "value cannot be blank"


class InvalidDateFormat(MarketoError):
    code, default_message = "704", "Invalid date format"


class BusinessRuleViolation(MarketoError):
    code, default_message = "709", "Business Rule Violation"


class TransientError(MarketoError):
    code, default_message = "713", "Transient Error"


class InvalidValue(MarketoError):
    code, default_message = "1001", "Invalid value"


class InvalidData(MarketoError):
    code, default_message = "1003", "Invalid data"


class FileNotReady(MarketoError):
    """A bulk export file asked for before the job completed: HTTP 404 (with the envelope as body)."""

    code, default_message, http_status = "1003", "Export file not available", 404


class FieldNotFound(MarketoError):
    code, default_message = "1006", "Field not found"


class InvalidSubscription(MarketoError):
    code, default_message = "614", "Invalid Subscription"


class LockWaitTimeout(MarketoError):
    code, default_message = "719", "Lock wait timeout exception"


class PartitionAccessDenied(MarketoError):
    code, default_message = "1008", "Access denied to partition"


class PartitionNameRequired(MarketoError):
    code, default_message = "1009", "Partition name must be specified"


class AlreadyExists(MarketoError):
    """An apiName, name or field that exists already (Marketo's "Object already exists")."""

    code, default_message = "1017", "Object already exists"


class FieldNotSupported(MarketoError):
    code, default_message = "1011", "Field not supported"


class ObjectNotFound(MarketoError):
    code, default_message = "1013", "Object not found"


class CrmEnabled(MarketoError):
    code, default_message = "1018", "CRM Enabled"


class MaxActivityTypes(MarketoError):
    code, default_message = "1027", "Max activity type limit reached"


class MaxFields(MarketoError):
    code, default_message = "1028", "Max field limit reached"


class ExportQueueFull(MarketoError):
    """1029 has three documented messages; this one (queue full) is the one to wait out."""

    code, default_message = "1029", "Too many jobs in queue"


class ExportDailyQuotaExceeded(ExportQueueFull):
    """1029 when the day's export allocation (500 MB) is spent: no create or enqueue until midnight US Central."""

    default_message = "Export daily quota exceeded"


class ExportAlreadyQueued(ExportQueueFull):
    """1029 for an enqueue of a job that is already queued (or past it)."""

    default_message = "Job already queued"


class UnsupportedFilterType(MarketoError):
    code, default_message = "1035", "Unsupported filter type"


#: Standard messages of the codes that can be injected as faults (and of every class above).
MESSAGES: dict[str, str] = {
    cls.code: cls.default_message
    for cls in (
        AccessTokenInvalid,
        AccessTokenExpired,
        RequestTimedOut,
        MethodNotSupported,
        RateLimitExceeded,
        DailyQuotaReached,
        ApiTemporarilyUnavailable,
        InvalidJson,
        ResourceNotFound,
        SystemError_,
        InvalidContentType,
        InvalidSubscription,
        ConcurrentAccessLimit,
        Blank,
        InvalidDateFormat,
        BusinessRuleViolation,
        TransientError,
        LockWaitTimeout,
        InvalidValue,
        InvalidData,
        FieldNotFound,
        PartitionAccessDenied,
        PartitionNameRequired,
        AlreadyExists,
        FieldNotSupported,
        ObjectNotFound,
        CrmEnabled,
        MaxActivityTypes,
        MaxFields,
        ExportQueueFull,
        UnsupportedFilterType,
    )
}


def error_for(code: str, message: str | None = None) -> MarketoError:
    """A :class:`MarketoError` carrying ``code`` (used for injected faults)."""
    err = MarketoError(message or MESSAGES.get(code, "Error"))
    err.code = code
    return err
