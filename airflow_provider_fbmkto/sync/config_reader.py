"""Typed, error-collecting access to one account of the config file (machinery of ``sync.config``).

Paths are tuples of keys and list indices, rendered ``matching.rules[1].email`` in messages.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Final

from airflow_provider_fbmkto.sync.config_schema import AccountConfigError
from airflow_provider_fbmkto.sync.matching import Rule

__all__ = ["MISSING", "Path_", "Reader", "deep_merge", "format_path", "kind", "lookup", "suggest", "unknown_keys"]

Path_ = tuple[str | int, ...]
MISSING: Final = object()
"""Marks an absent (or null) value."""


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"allowed keys: {', '.join(sorted(choices))}"


def unknown_keys(data: Mapping[object, object], schema: Mapping[str, object], path: Path_) -> list[tuple[Path_, str]]:
    """``(path, problem)`` for each key not in ``schema`` (recursively through mappings and rule lists)."""
    problems: list[tuple[Path_, str]] = []
    for key, value in data.items():
        if not isinstance(key, str) or key not in schema:
            problems.append(((*path, str(key)), f"unknown key; {suggest(str(key), list(schema))}"))
            continue
        sub = schema[key]
        if isinstance(sub, dict) and isinstance(value, Mapping):
            problems += unknown_keys(value, sub, (*path, key))
        elif isinstance(sub, list) and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    problems += unknown_keys(item, sub[0], (*path, key, i))
    return problems


def deep_merge(base: Mapping[object, object], over: Mapping[object, object]) -> dict[object, object]:
    """``over`` on top of ``base``: nested mappings merge, everything else (lists too) is replaced."""
    out = dict(base)
    for key, value in over.items():
        prev = out.get(key)
        out[key] = deep_merge(prev, value) if isinstance(prev, Mapping) and isinstance(value, Mapping) else value
    return out


def lookup(data: object, path: Path_) -> object:
    for part in path:
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                return MISSING
            data = data[part]
        else:
            if not isinstance(data, Mapping) or part not in data:
                return MISSING
            data = data[part]
    return data


def kind(value: object) -> str:
    return {bool: "true/false", int: "a number", str: "text", list: "a list", dict: "a mapping"}.get(
        type(value), type(value).__name__
    )


class Reader:
    """Typed access to one merged account, collecting errors with their origin."""

    def __init__(
        self, source: str, label: str, own: Mapping[object, object], defaults: Mapping[object, object]
    ) -> None:
        self.source = source
        self.label = label
        self.own = own
        self.defaults = defaults
        self.merged = deep_merge(defaults, own)
        self.errors: list[AccountConfigError] = []
        self.rules: list[tuple[int, Rule]] = []  # valid rules with their index in the file

    def error(self, path: Path_, problem: str) -> None:
        if path and lookup(self.own, path) is MISSING and lookup(self.defaults, path) is not MISSING:
            problem += " (this value comes from 'defaults')"
        self.errors.append(AccountConfigError(self.source, self.label, format_path(path) or None, problem))

    def get(self, path: Path_) -> object:
        value = lookup(self.merged, path)
        return MISSING if value is None else value

    def required(self, path: Path_, example: str) -> object:
        value = self.get(path)
        if value is MISSING:
            self.error(path, f"missing; add e.g. `{format_path(path)}: {example}`")
        return value

    def text(self, path: Path_, *, required: str | None = None) -> str | None:
        value = self.required(path, required) if required is not None else self.get(path)
        if value is MISSING:
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"must be non-empty text, got {kind(value)} {value!r}")
            return None
        return value.strip()

    def flag(self, path: Path_, default: bool) -> bool:
        value = self.get(path)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.error(path, f"must be true or false (unquoted), got {value!r}")
            return default
        return value

    def integer(self, path: Path_, default: int | None, minimum: int) -> int | None:
        value = self.get(path)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            hint = " (write it without quotes)" if isinstance(value, str) and value.strip().isdigit() else ""
            self.error(path, f"must be a whole number, got {kind(value)} {value!r}{hint}")
            return default
        if value < minimum:
            self.error(path, f"must be at least {minimum}, got {value}")
            return default
        return value

    def section(self, path: Path_) -> Mapping[object, object]:
        value = self.get(path)
        if value is MISSING:
            return {}
        if not isinstance(value, Mapping):
            self.error(path, f"must be a mapping (key: value lines), got {kind(value)}")
            return {}
        return value
