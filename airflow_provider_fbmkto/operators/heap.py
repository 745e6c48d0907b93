"""The task process's garbage collector, set for a step that streams a million records through it.

CPython's cyclic collector runs a young collection every 700 net allocations of container objects (dicts,
lists, tuples, dataclass instances) and, every hundred of those, a full one over the whole heap. A sync
step allocates tens of millions of small containers -- a record's dict, a row's tuple, a payload -- held a
batch at a time and freed by reference counting, not by the collector. At 1M records the map task spent
47 of its 165 CPU seconds in the collector (271 full collections of about 0.15 s each, timed with
``gc.callbacks``), walking each time the objects Airflow and SQLAlchemy had made before the task began and
the step's own caches, and finding a few dozen SQLAlchemy statement objects a query to free.

While a step runs, :func:`bulk_heap`

* freezes the objects that exist when it starts (``gc.freeze``): the imports and Airflow's task runner,
  which the step does not turn into garbage, are not walked again;
* runs a young collection every ``YOUNG_THRESHOLD`` allocations instead of 700 (``gc.set_threshold``):
  cyclic garbage is still collected, less often -- at 1M records the map task's peak RSS is the same.

Measured so, the collector's share of the map task at 1M records fell from 47 s to 4-7 s (with the machine's
speed). On exit both are undone (by the outermost use only); objects someone else froze before (a forking
executor does, to share pages with its children) stay frozen.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

#: Young-generation threshold while a step runs (CPython's default is 700).
YOUNG_THRESHOLD = 20_000
F = TypeVar("F", bound=Callable[..., Any])


class _Collector:
    """What :func:`bulk_heap` changed, to undo it when its outermost use ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.thresholds = gc.get_threshold()
        self.unfreeze = False

    def enter(self) -> None:
        with self.lock:
            self.depth += 1
            if self.depth == 1:
                self.thresholds = gc.get_threshold()
                self.unfreeze = gc.get_freeze_count() == 0  # else someone else's freeze: theirs to undo
                gc.freeze()
                young, *older = self.thresholds
                gc.set_threshold(max(YOUNG_THRESHOLD, young), *older)

    def exit(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                gc.set_threshold(*self.thresholds)
                if self.unfreeze:
                    gc.unfreeze()


_collector = _Collector()


@contextmanager
def bulk_heap() -> Iterator[None]:
    """Run the body with the collector set for bulk work (see the module doc); restored afterwards."""
    _collector.enter()
    try:
        yield
    finally:
        _collector.exit()


def with_bulk_heap(method: F) -> F:
    """Decorate an operator's ``execute`` (or its resumption after a deferral) to run under :func:`bulk_heap`."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with bulk_heap():
            return method(*args, **kwargs)

    return cast("F", wrapper)
