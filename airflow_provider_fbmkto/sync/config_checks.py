"""Checks across the accounts of one config file (see :mod:`airflow_provider_fbmkto.sync.config`).

* a name used by several accounts: every occurrence is refused (which one is meant cannot be guessed);
* a ``freshbooks_conn_id`` used by several accounts: the later ones are refused;
* a company key named by explicit rules of several accounts: the later account is refused unless every
  rule naming that company in both accounts has ``shared: true``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from airflow_provider_fbmkto.sync.config_schema import AccountConfigError
from airflow_provider_fbmkto.sync.matching import Rule, external_company_id

__all__ = ["AccountFacts", "cross_account_errors"]


class AccountFacts(NamedTuple):
    """What the cross-account checks need of one account (as far as it could be read)."""

    label: str
    """The account name, or ``accounts[i]``."""
    name: str | None
    """The valid name, if any."""
    freshbooks_conn_id: str | None
    rules: Sequence[tuple[int, Rule]]
    """Valid rules with their index in the file's ``matching.rules`` list."""


def _sharing(rules: Sequence[tuple[int, Rule]]) -> dict[str, tuple[int, bool]]:
    """company key → (index of its first rule, whether every rule naming it is shared)."""
    out: dict[str, tuple[int, bool]] = {}
    for index, rule in rules:
        first, shared = out.get(rule.key, (index, True))
        out[rule.key] = (first, shared and rule.shared)
    return out


def cross_account_errors(source: str, accounts: Sequence[AccountFacts | None]) -> dict[int, list[AccountConfigError]]:
    """Errors by account position (``None`` entries — unreadable accounts — are skipped)."""
    errors: dict[int, list[AccountConfigError]] = {}

    def add(i: int, label: str, field: str | None, problem: str) -> None:
        errors.setdefault(i, []).append(AccountConfigError(source, label, field, problem))

    names = Counter(a.name for a in accounts if a is not None and a.name is not None)
    conns: dict[str, str] = {}
    keys_seen: list[tuple[str, dict[str, tuple[int, bool]]]] = []
    for i, acct in enumerate(accounts):
        if acct is None:
            continue
        if acct.name is not None and names[acct.name] > 1:
            add(
                i, acct.label, "name",
                f"is used by {names[acct.name]} accounts; names must be unique (DAG id fbmkto_sync__{acct.name})",
            )  # fmt: skip
        conn = acct.freshbooks_conn_id
        if conn is not None:
            if conn in conns:
                add(
                    i, acct.label, "freshbooks_conn_id",
                    f"{conn!r} is also used by account {conns[conn]!r}; one FreshBooks account synced twice sends "
                    f"every activity twice — give each account its own connection",
                )  # fmt: skip
            else:
                conns[conn] = acct.label
        mine = _sharing(acct.rules)
        for key, (index, shared) in mine.items():
            for other_label, theirs in keys_seen:
                if key in theirs and not (shared and theirs[key][1]):
                    add(
                        i, acct.label, f"matching.rules[{index}]",
                        f"company {external_company_id(key)!r} is also written by account {other_label!r} "
                        f"(its matching.rules[{theirs[key][0]}]); two accounts would overwrite each other's "
                        f"billing fields — if that is intended set 'shared: true' on the rules naming it in both "
                        f"accounts",
                    )  # fmt: skip
                    break
        keys_seen.append((acct.label, mine))
    return errors
