"""Injected faults: the next N matching calls fail (or stall) the way Marketo sometimes does.

Kinds:

* Marketo codes ``601 602 604 606 607 608 611 615 713 1029``: HTTP 200, ``success: false``, the code's message;
* HTTP statuses ``500 502 503 413 414``: a bare non-JSON answer with that status;
* ``timeout``: the call stalls ``timeout_seconds`` (30 s by default) holding its concurrency slot, then is
  served normally -- a client with a shorter read timeout gives up although the write lands;
* ``slow``: the call stalls ``slow_seconds`` (2 s by default), then is served normally;
* ``export_failed``: the next bulk export to finish ends ``Failed`` (not tied to a path).

``path_prefix=None`` matches every REST/bulk call but not the identity endpoint; pass ``"/identity"`` to
hit token requests.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

MARKETO_CODES = frozenset({"601", "602", "604", "606", "607", "608", "611", "615", "713", "1029"})
HTTP_STATUSES = frozenset({"500", "502", "503", "413", "414"})
STALLS = frozenset({"timeout", "slow"})
KINDS = MARKETO_CODES | HTTP_STATUSES | STALLS | {"export_failed"}


@dataclass
class Fault:
    kind: str
    remaining: int
    path_prefix: str | None = None

    def matches(self, path: str) -> bool:
        if self.path_prefix is None:
            return not path.startswith("/identity")
        return path.startswith(self.path_prefix)


def validate(kind: object, count: object, path_prefix: object) -> tuple[str, int, str | None]:
    """Check a fault request; ``ValueError`` with a message fit for a 400 answer."""
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of: {', '.join(sorted(KINDS))}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, not {count!r}")
    if path_prefix is not None and (not isinstance(path_prefix, str) or not path_prefix.startswith("/")):
        raise ValueError(f"path_prefix must be a path starting with '/', not {path_prefix!r}")
    return kind, count, path_prefix


class FaultQueue:
    """Pending faults, consumed first-in first-out by the calls they match."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, count: int = 1, path_prefix: str | None = None) -> None:
        kind, count, path_prefix = validate(kind, count, path_prefix)
        with self._lock:
            self._faults.append(Fault(kind, count, path_prefix))

    def take(self, path: str) -> str | None:
        """The kind of the first pending fault matching ``path`` (consuming one of its count), or ``None``."""
        with self._lock:
            for fault in self._faults:
                if fault.kind != "export_failed" and fault.matches(path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault.kind
            return None

    def pending(self) -> list[dict[str, object]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
