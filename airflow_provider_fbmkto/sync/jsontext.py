"""The one JSON encoder and decoder of the hot paths: state DB JSON columns, staged lines, payload hashes, bodies.

A large run encodes and decodes a few million small documents (every mirror record several times, every ledger
payload, every activity's request body); :mod:`orjson` does that several times faster than :mod:`json`, which
was a third of the map task's CPU at 1M records. The output is JSON either way; where the *exact text*
matters -- :func:`canonical`, whose SHA-256 is a payload hash stored in the ledger -- it is the same text
``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` gives (tested), so hashes made
before this module existed still match. A value orjson cannot encode the same way (an int beyond 64 bits) goes
through :mod:`json`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: dict keys that are not strings (ints, enums) become strings, as :func:`json.dumps` makes them.
_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (non-ASCII characters kept as they are)."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes (a request body)."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:  # a TypeError, as json.dumps raises
        if not _too_big_int(exc):
            raise
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def loads(text: str | bytes) -> Any:
    """The value of a JSON document (raises :class:`ValueError` for text that is not JSON)."""
    return orjson.loads(text)


def canonical(value: Any) -> str:
    """JSON with sorted keys, no spaces and non-ASCII kept: byte for byte what
    ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes, for the plain values
    (dicts with string keys, lists, str, int, bool, None) that :func:`~airflow_provider_fbmkto.sync.keys.canonical_json`
    passes it."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError as exc:  # a TypeError, as json.dumps raises
        if not _too_big_int(exc):
            raise
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _too_big_int(exc: Exception) -> bool:
    return "Integer exceeds 64-bit range" in str(exc)


__all__ = ["canonical", "dumps", "dumps_bytes", "loads"]
