"""Reading the account config file: strict YAML and the document level (machinery of ``sync.config``).

Every problem becomes an :class:`AccountConfigError` (file, account, field path, fix). An account's parsing does
not stop at its first problem: all of them are reported at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from airflow_provider_fbmkto.sync.config_checks import AccountFacts, cross_account_errors
from airflow_provider_fbmkto.sync.config_fields import SCHEMA, parse_account
from airflow_provider_fbmkto.sync.config_reader import Reader, format_path, kind, suggest, unknown_keys
from airflow_provider_fbmkto.sync.config_schema import CONFIG_ENV, AccountConfig, AccountConfigError

__all__ = ["parse_document", "read_yaml"]

_TOP_KEYS = ("accounts", "defaults")

# ---------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key given twice in one mapping (YAML would keep the last silently) and
    leaves dates as text (they are checked per account)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (remove one; YAML would silently keep the last)",
                    key_node.start_mark,
                )  # fmt: skip
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Plain dates stay text, so a bad date (2025-13-01) is this account's error, not a crash of the whole file.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_yaml(path: str | Path) -> object:
    """Read and parse the YAML file; file-level problems raise :class:`AccountConfigError`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccountConfigError(
            source, None, None,
            f"file not found; create it (start from dags/fbmkto_accounts.example.yaml) or set {CONFIG_ENV} "
            f"to its path",
        ) from None  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        raise AccountConfigError(source, None, None, f"cannot read the file ({exc}); check its permissions") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise AccountConfigError(
            source, None, None, f"YAML syntax error at {where}{problem}; fix the YAML there"
        ) from None


# ---------------------------------------------------------------- the document


def _file_error(source: str, field: str | None, problem: str) -> AccountConfigError:
    return AccountConfigError(source, None, field, problem)


def parse_document(data: object, *, source: str) -> tuple[list[AccountConfig], list[AccountConfigError]]:
    """Parse a loaded document; see :func:`airflow_provider_fbmkto.sync.config.parse_config_collecting`."""
    if data is None:
        raise _file_error(source, None, "the file is empty; add an 'accounts:' list (see the example config)")
    if not isinstance(data, Mapping):
        raise _file_error(source, None, f"the top level must be a mapping with 'accounts:', got {kind(data)}")
    for key in data:
        if key not in _TOP_KEYS:
            raise _file_error(source, str(key), f"unknown top-level key; {suggest(str(key), list(_TOP_KEYS))}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise _file_error(source, "defaults", f"must be a mapping of account fields, got {kind(defaults)}")
    if "name" in defaults:
        raise _file_error(source, "defaults.name", "an account name cannot be a default; give each account its own")
    for path, problem in unknown_keys(defaults, SCHEMA, ("defaults",)):
        raise _file_error(source, format_path(path), problem)
    accounts = data.get("accounts")
    if not isinstance(accounts, list) or not accounts:
        got = (
            "missing" if accounts is None else (f"got {kind(accounts)}" if not isinstance(accounts, list) else "empty")
        )
        raise _file_error(source, "accounts", f"must be a non-empty list of accounts ({got}); see the example config")

    errors: list[AccountConfigError] = []
    per_account: list[list[AccountConfigError]] = []
    parsed: list[AccountConfig | None] = []
    facts: list[AccountFacts | None] = []
    for i, raw in enumerate(accounts):
        if not isinstance(raw, Mapping):
            per_account.append(
                [AccountConfigError(source, f"accounts[{i}]", None, f"must be a mapping, got {kind(raw)}")]
            )
            parsed.append(None)
            facts.append(None)
            continue
        raw_name = raw.get("name")
        label = raw_name.strip() if isinstance(raw_name, str) and raw_name.strip() else f"accounts[{i}]"
        reader = Reader(source, label, raw, defaults)
        account, fact = parse_account(reader)
        per_account.append(reader.errors)
        parsed.append(account)
        facts.append(fact)

    cross = cross_account_errors(source, facts)
    good: list[AccountConfig] = []
    for i, account in enumerate(parsed):
        mine = per_account[i] + cross.get(i, [])
        errors.extend(mine)
        if account is not None and not mine:
            good.append(account)
    return good, errors
