"""The fault queue both emulators share: injected failures that the next matching requests answer with.

Each emulator keeps only its own list of kinds, their validation and how a kind becomes an HTTP response
(``freshbooks/faults.py``, ``marketo/faults.py``); queueing, matching and consuming live here. A fault is
consumed one ``remaining`` use per matching request, first-in first-out across injected faults.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic, TypeVar


@dataclass
class Fault:
    """A queued fault: ``kind``, the uses left, the path prefix it is limited to, an optional message.

    An emulator that needs more parameters (FreshBooks: ``retry_after``, ``delay``) subclasses it.
    """

    kind: str
    remaining: int
    #: ``None`` matches every path but the queue's ``unscoped_skip`` prefixes
    path_prefix: str | None = None
    #: the error message to answer instead of the kind's standard one, where the emulator supports it
    message: str | None = None

    def matches(self, path: str, unscoped_skip: tuple[str, ...] = ()) -> bool:
        """Whether this fault (with uses left) applies to ``path``."""
        if self.remaining <= 0:
            return False
        if self.path_prefix is None:
            return not path.startswith(unscoped_skip)
        return path.startswith(self.path_prefix)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


F = TypeVar("F", bound=Fault)


class FaultQueue(Generic[F]):
    """Pending faults (of one emulator's :class:`Fault` class), thread-safe, consumed first-in first-out.

    :param unscoped_skip: path prefixes a fault without ``path_prefix`` does not match (Marketo: the identity
        endpoint, hit only when asked for with ``path_prefix="/identity"``).
    """

    def __init__(self, *, unscoped_skip: tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._faults: list[F] = []
        self.unscoped_skip = unscoped_skip

    def add(self, fault: F) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str) -> F | None:
        """The first fault matching ``path``, with one use consumed; ``None`` when none applies."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, self.unscoped_skip):
                    fault.remaining -= 1
                    self._faults = [f for f in self._faults if f.remaining > 0]
                    return fault
        return None

    def pending(self) -> list[F]:
        """Copies of the faults with uses left, in queue order."""
        with self._lock:
            return [replace(f) for f in self._faults if f.remaining > 0]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
