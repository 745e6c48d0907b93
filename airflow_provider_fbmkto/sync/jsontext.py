"""The one JSON encoder and decoder of the hot paths: state DB JSON columns, staged lines, payload hashes, bodies.

A large run encodes and decodes a few million small documents (every mirror record several times, every ledger
payload, every activity's request body); :mod:`orjson` does that several times faster than :mod:`json`
(about a fifth of the map task's time in a profile at 1M records). The output is JSON either way; where the *exact text*
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
#: every byte of a document to "." but its digits to "0", so a run of 19 digits is one substring search away
#: (a C-speed pass, a fraction of orjson's own: a regex took three times orjson's time)
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_NINETEEN_DIGITS = b"0" * 19


def dumps(value: Any) -> str:
    """Compact JSON text of ``value`` (non-ASCII characters kept as they are)."""
    return dumps_bytes(value).decode()


def dumps_bytes(value: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes (a request body)."""
    return _encode(value, _OPTIONS, sort_keys=False)


def loads(text: str | bytes) -> Any:
    """The value of a JSON document (raises :class:`ValueError` for text that is not JSON).

    A document reads as ``json.loads`` reads it: what orjson refuses (``NaN``, UTF-16 bytes) goes to :mod:`json`,
    and so does a document with a run of 19 or more digits, since orjson would read an integer beyond 64 bits
    (the shortest has 19 digits) as a float, silently."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _NINETEEN_DIGITS not in raw.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def canonical(value: Any) -> str:
    """JSON with sorted keys, no spaces and non-ASCII kept: byte for byte what
    ``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes, for the plain values
    (dicts with string keys, lists, str, int, bool, None) that :func:`~airflow_provider_fbmkto.sync.keys.canonical_json`
    passes it."""
    return _encode(value, orjson.OPT_SORT_KEYS, sort_keys=True).decode()


def _encode(value: Any, option: int, *, sort_keys: bool) -> bytes:
    """orjson's compact UTF-8 JSON; for an int beyond 64 bits, :mod:`json`'s same text."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError as exc:  # a TypeError, as json.dumps raises
        if "Integer exceeds 64-bit range" not in str(exc):
            raise
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False).encode()


__all__ = ["canonical", "dumps", "dumps_bytes", "loads"]
