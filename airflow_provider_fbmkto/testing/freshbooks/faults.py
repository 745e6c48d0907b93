"""Fault injection: queue failures that the next matching API requests answer with instead of the real thing.

Kinds (each consumes one ``count`` per matching request, FIFO across injected faults):

========== ======================================================================================
``500``    JSON ``{"errno": 500, "message": …}``, status 500
``502``    ``text/html`` gateway page, status 502 (a body clients must not try to parse as JSON)
``503``    ``text/html``, status 503, ``Retry-After`` when ``retry_after`` is given
``429``    JSON ``{"errno": 429, "message": …}``, status 429, ``Retry-After`` when given
``timeout`` waits ``delay`` seconds (default 30) then answers 504: a client with a shorter read timeout
           sees a timeout, one with a longer sees a gateway timeout
``slow``   waits ``delay`` seconds, then answers normally
``401``    the presented access token is expired on the spot and the call answers 401 (as the real
           service does when a token dies mid-run); the client must refresh
========== ======================================================================================

Faults never apply to the control API (``/_emulator/…``). The queue is the emulators' shared
:class:`~airflow_provider_fbmkto.testing.faults.FaultQueue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from airflow_provider_fbmkto.testing import faults as shared
from airflow_provider_fbmkto.testing.faults import FaultQueue

from .errors import FieldError

__all__ = ["DEFAULT_TIMEOUT_DELAY", "FAULT_KINDS", "MAX_DELAY", "Fault", "FaultQueue", "error_response", "validate"]

FAULT_KINDS = ("500", "502", "503", "429", "timeout", "slow", "401")
DEFAULT_TIMEOUT_DELAY = 30.0
MAX_DELAY = 300.0


@dataclass(kw_only=True)
class Fault(shared.Fault):
    """A FreshBooks fault: the shared one plus ``retry_after`` and ``delay`` (FreshBooks takes no ``message``)."""

    retry_after: int | None = None
    delay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["message"]
        return out


def validate(spec: Mapping[str, Any]) -> Fault:
    """Build a fault from user input (Python kwargs or control-API JSON); bad values name their field."""
    known = {"kind", "count", "path_prefix", "retry_after", "delay"}
    for name in spec:
        if name not in known:
            raise FieldError(name, f"unknown fault field; known: {', '.join(sorted(known))}")
    kind = str(spec.get("kind", ""))
    if kind not in FAULT_KINDS:
        raise FieldError("kind", f"must be one of {', '.join(FAULT_KINDS)}, got {spec.get('kind')!r}")
    count = spec.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FieldError("count", f"must be an integer >= 1, got {count!r}")
    prefix = spec.get("path_prefix")
    if prefix is not None and (not isinstance(prefix, str) or not prefix.startswith("/")):
        raise FieldError("path_prefix", f"must be a path starting with '/', got {prefix!r}")
    if isinstance(prefix, str) and prefix.startswith("/_emulator"):
        raise FieldError("path_prefix", "faults never apply to the control API")
    retry_after = spec.get("retry_after")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
    ):
        raise FieldError("retry_after", f"must be a whole number of seconds >= 0, got {retry_after!r}")
    delay = spec.get("delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY:
        raise FieldError("delay", f"must be a number of seconds between 0 and {MAX_DELAY:g}, got {delay!r}")
    if kind == "timeout" and not delay:
        delay = DEFAULT_TIMEOUT_DELAY
    return Fault(kind=kind, remaining=count, path_prefix=prefix, retry_after=retry_after, delay=float(delay))


def error_response(fault: Fault) -> Response:
    """The canned answer of a 5xx/429/timeout fault (``slow`` and ``401`` are handled by the dispatcher)."""
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    if fault.kind == "500":
        return JSONResponse({"errno": 500, "message": "Internal Server Error"}, status_code=500, headers=headers)
    if fault.kind == "429":
        return JSONResponse(
            {"errno": 429, "message": "Too Many Requests: rate limit exceeded"}, status_code=429, headers=headers
        )
    status, text = {"502": (502, "Bad Gateway"), "503": (503, "Service Unavailable")}.get(
        fault.kind, (504, "Gateway Timeout")
    )
    body = f"<html><head><title>{status} {text}</title></head><body><h1>{status} {text}</h1></body></html>"
    return Response(body, status_code=status, media_type="text/html", headers=headers)
