"""Small helpers shared by the state stores: UTC time, chunking."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from airflow_provider_fbmkto.state.db import StateDB

T = TypeVar("T")

#: Rows per bulk statement (IN lists, executemany pages). Well under SQLite's bound-parameter limit.
CHUNK = 500
#: Chunks the bulk writers (mirror upserts, ledger plans) put in one transaction: an index page that several
#: chunks touch then goes to SQLite's write-ahead log once, not once per chunk (a fifth of a large map's CPU
#: went to commits); the write lock is held for a few thousand rows at a time.
CHUNKS_PER_TX = 10


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime, what: str = "datetime") -> datetime:
    """Return ``value`` converted to UTC; a naive datetime is refused (we never guess a time zone).

    :param value: an aware datetime.
    :param what: name used in the error message.
    """
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(timezone.utc)


def chunked(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Yield lists of at most ``size`` items, consuming ``items`` lazily."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def write_in_chunks(db: StateDB, items: Iterable[T], write: Callable[[Connection, list[T]], None]) -> None:
    """Call ``write(conn, chunk)`` for each ``CHUNK`` of ``items``, ``CHUNKS_PER_TX`` chunks to one write
    transaction; ``items`` is consumed lazily (one chunk in memory at a time), and none opens no transaction."""
    chunks = chunked(items)
    for first in chunks:
        with db.write_tx() as conn:
            write(conn, first)
            for chunk in islice(chunks, CHUNKS_PER_TX - 1):
                write(conn, chunk)
