"""Injected faults: the next N matching calls fail (or stall) the way Marketo sometimes does.

Kinds:

* Marketo codes ``601 602 604 606 607 608 611 614 615 713 719 1029``: HTTP 200, ``success: false``, the code's
  message, or ``message`` when given (1029 has three: "Too many jobs in queue", "Export daily quota exceeded",
  "Job already queued");
* HTTP statuses ``500 502 503 413 414``: a bare non-JSON answer with that status;
* ``timeout``: the call stalls ``timeout_seconds`` (30 s by default) holding its concurrency slot, then is
  served normally -- a client with a shorter read timeout gives up although the write lands;
* ``slow``: the call stalls ``slow_seconds`` (2 s by default), then is served normally;
* ``export_failed``: the next bulk export to finish ends ``Failed`` (not tied to a path);
* ``garbled``: the call is served (a write lands), then its answer is cut short: HTTP 200, a JSON content type,
  half the body (what a dropped proxy connection or a broken gateway hands the client).

``path_prefix=None`` matches every REST/bulk call but not the identity endpoint; pass ``"/identity"`` to
hit token requests. The queue is the emulators' shared :class:`~airflow_provider_fbmkto.testing.faults.FaultQueue`
(:func:`new_queue` builds it with that identity exception).
"""

from __future__ import annotations

from airflow_provider_fbmkto.testing.faults import Fault, FaultQueue

__all__ = [
    "GARBLED",
    "HTTP_STATUSES",
    "KINDS",
    "MARKETO_CODES",
    "STALLS",
    "Fault",
    "FaultQueue",
    "new_queue",
    "validate",
    "validate_message",
]

MARKETO_CODES = frozenset({"601", "602", "604", "606", "607", "608", "611", "614", "615", "713", "719", "1029"})
HTTP_STATUSES = frozenset({"500", "502", "503", "413", "414"})
STALLS = frozenset({"timeout", "slow"})
GARBLED = "garbled"
KINDS = MARKETO_CODES | HTTP_STATUSES | STALLS | {"export_failed", GARBLED}


#: paths a fault without ``path_prefix`` does not match
UNSCOPED_SKIP = ("/identity",)


def new_queue() -> FaultQueue[Fault]:
    """An empty queue whose unscoped faults skip the identity endpoint."""
    return FaultQueue(unscoped_skip=UNSCOPED_SKIP)


def validate(kind: object, count: object, path_prefix: object) -> tuple[str, int, str | None]:
    """Check a fault request; ``ValueError`` with a message fit for a 400 answer."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of: {', '.join(sorted(KINDS))}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    if path_prefix is not None and (not isinstance(path_prefix, str) or not path_prefix.startswith("/")):
        raise ValueError(f"path_prefix must be a path starting with '/', not {path_prefix!r}")
    return kind, count, path_prefix


def validate_message(kind: str, message: object) -> str | None:
    """A fault's message: only for Marketo codes, a non-empty string."""
    if message is None:
        return None
    if kind not in MARKETO_CODES or not isinstance(message, str) or not message.strip():
        raise ValueError(f"message must be a non-empty string, and only for Marketo codes (not {kind!r})")
    return message
