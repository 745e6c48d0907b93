"""The hot-path JSON codec: the same documents as :mod:`json`, and the same canonical text (payload hashes)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_fbmkto.sync import jsontext
from airflow_provider_fbmkto.sync.keys import canonical_json, payload_hash

#: What canonical_json hands the encoder: plain JSON values, any text (control characters, non-ASCII, astral).
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)


def _stdlib_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=300)
@given(_plain)
def test_canonical_text_is_byte_for_byte_what_json_writes(value: Any) -> None:
    # A ledger row's payload_hash was made with json.dumps: a different text would make every lead and company
    # look changed (and be sent again) after an upgrade.
    assert jsontext.canonical(value) == _stdlib_canonical(value)


@given(_plain)
def test_dumps_and_loads_round_trip_like_json(value: Any) -> None:
    text = jsontext.dumps(value)
    assert jsontext.loads(text) == json.loads(text) == value
    assert jsontext.loads(jsontext.dumps_bytes(value)) == value


def test_ints_beyond_64_bits_still_encode_as_json_does() -> None:
    big = {"b": 2**70, "a": [-(2**65)]}
    assert jsontext.canonical(big) == _stdlib_canonical(big)
    assert json.loads(jsontext.dumps(big)) == big


@pytest.mark.parametrize(
    "text",
    [
        b'{"id": 123456789012345678901234}',
        '{"ids": [-9223372036854775809, 18446744073709551616, 18446744073709551615]}',
        b'{"x": NaN, "y": -Infinity, "z": 1e400}',
        '{"name": "Zoë"}'.encode("utf-16"),
    ],
)
def test_what_orjson_refuses_and_json_reads_decodes_as_json_does(text: str | bytes) -> None:
    # a Marketo answer (or a stored document) with a huge id (orjson alone reads it as a float), JSON's non-finite
    # extension or UTF-16 bytes
    assert repr(jsontext.loads(text)) == repr(json.loads(text))


def test_payload_hash_of_a_known_document_is_unchanged() -> None:
    # Pinned from the json.dumps implementation (before orjson): sorted keys, no spaces, "é" kept, "\n" escaped.
    doc = {"z": "é\n", "a": [1, None, True], "m": {"y": "\u2028", "x": "\x01"}}
    assert canonical_json(doc) == '{"a":[1,null,true],"m":{"x":"\\u0001","y":"\u2028"},"z":"é\\n"}'
    assert payload_hash(doc) == hashlib.sha256(_stdlib_canonical(doc).encode()).hexdigest()


def test_errors_are_the_ones_json_raises() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsontext.dumps({"amount": object()})
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads("{not json")
    # dict keys that are not strings become strings, as json.dumps makes them
    assert jsontext.loads(jsontext.dumps({1: "a"})) == json.loads(json.dumps({1: "a"})) == {"1": "a"}
