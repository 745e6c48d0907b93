"""Accounts that collide: who may write a Marketo person or company that several accounts have.

Many FreshBooks accounts sync into one Marketo instance. The first account to write a lead e-mail or a company
key **owns** it (the state DB records the owner, ``state/owners.py``); ownership stays with that account for
good, even when it stops writing the key (an operator can release it: ``fbmkto owners release``). Another
account's writes for an owned key are decided by :func:`verdict`:

* **send**: the account owns the key (or nobody did yet: it has just claimed it);
* **shared**: both accounts share it -- ``marketo.leads.shared: true`` in both for a lead e-mail, a rule naming the
  company with ``shared: true`` in both for a company key. The write goes through; a shared lead is sent
  ``updateOnly``, so only the owner ever creates the person and two accounts can never create two people for
  one e-mail;
* **hold**: anything else. The write is not sent; the ledger row is skipped with the reason "owned by account
  <owner>" (see ``pipeline/reasons.py``) and shown in the report and on the status page.

What a held key covers (the loader applies it): the company upsert for a company key; the lead upsert, the
activities on that person and its list membership for a lead e-mail.

:func:`overlap_warnings` is the config-time half: rules of several accounts naming the same e-mail or domain.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.matching import company_key_for_rule, find_conflicts

__all__ = ["COMPANY", "LEAD", "SharingPolicy", "Verdict", "overlap_warnings", "sharing_policy", "verdict"]

#: The two kinds of owned keys: a lead e-mail (lower-cased) and a company key (the part after ``fbmkto:``).
LEAD, COMPANY = "lead", "company"


@dataclass(frozen=True, slots=True)
class SharingPolicy:
    """What one account lets other accounts write together with it.

    :param leads: ``marketo.leads.shared``: every lead e-mail.
    :param companies: company keys named by the account's rules with ``shared: true``.
    """

    leads: bool = False
    companies: frozenset[str] = frozenset()

    def shares(self, kind: str, key: str) -> bool:
        """Whether this account shares the ``kind`` key ``key`` (``lead`` e-mail or ``company`` key)."""
        if kind == LEAD:
            return self.leads
        if kind == COMPANY:
            return key in self.companies
        raise ValueError(f"unknown owned kind {kind!r}; use {LEAD!r} or {COMPANY!r}")


class Verdict(str, enum.Enum):
    """What happens to one account's write of an owned key."""

    SEND = "send"
    SHARED = "shared"
    HOLD = "hold"


def sharing_policy(account: AccountConfig) -> SharingPolicy:
    """The account's sharing policy, from its config (``marketo.leads.shared`` and rules with ``shared: true``).

    A company named by several rules of the account is shared only when every one of them says so (the rule the
    config check applies).
    """
    shared: dict[str, bool] = {}
    for rule in account.matching.rules:
        shared[rule.key] = shared.get(rule.key, True) and rule.shared
    return SharingPolicy(leads=account.marketo.leads.shared, companies=frozenset(k for k, ok in shared.items() if ok))


def verdict(
    account: str, kind: str, key: str, *, owner: str, mine: SharingPolicy, theirs: SharingPolicy | None
) -> Verdict:
    """Send, share or hold ``account``'s write of the ``kind`` key ``key`` that ``owner`` owns.

    :param account: the account writing.
    :param kind: :data:`LEAD` or :data:`COMPANY`.
    :param key: the lead e-mail or company key.
    :param owner: the account that owns the key (the writing account itself when it owns it).
    :param mine: the writing account's policy.
    :param theirs: the owner's policy as it last declared it; ``None`` when unknown (the owner never declared one):
        then nothing is shared.
    """
    if owner == account:
        return Verdict.SEND
    if theirs is not None and mine.shares(kind, key) and theirs.shares(kind, key):
        return Verdict.SHARED
    return Verdict.HOLD


def _names(accounts: Iterable[str]) -> str:
    return ", ".join(repr(a) for a in accounts)


def overlap_warnings(accounts: Sequence[AccountConfig]) -> list[str]:
    """Rules of several accounts that name the same e-mail or the same domain (sorted; empty: none).

    Such accounts write the same Marketo people: whichever writes one first owns it and the others' writes for
    it are held at run time, unless every one of them sets ``marketo.leads.shared: true``. (Rules naming the same
    *company* are refused by the config check itself unless shared.) Accounts are compared whatever their Marketo
    connection, since two connections may reach one instance.
    """
    by_account = {
        a.name: [f"{r.selector} {r.email or r.domain}" for r in a.matching.rules if r.selector != "client_id"]
        for a in accounts
    }
    leads_shared = {a.name: a.marketo.leads.shared for a in accounts}
    companies = {
        (a.name, f"{r.selector} {r.email or r.domain}"): company_key_for_rule(r.company)
        for a in accounts
        for r in reversed(a.matching.rules)  # the first rule naming a selector wins, as in matching
        if r.selector != "client_id"
    }
    out: list[str] = []
    for conflict in find_conflicts(by_account):
        if all(leads_shared[a] for a in conflict.accounts):
            continue
        selector, _, value = conflict.key.partition(" ")
        message = (
            f"accounts {_names(conflict.accounts)} all have a matching rule for {selector} {value}: if they write "
            f"the same Marketo instance, the first to write one of its people owns that person and the others' "
            f"writes for it are held (reported as 'owned by account ...'); set marketo.leads.shared: true in each "
            f"of these accounts if they may all write them"
        )
        keys = sorted({companies[(a, conflict.key)] for a in conflict.accounts})
        if len(keys) > 1:
            message += f"; their rules also put these clients in different companies ({', '.join(keys)})"
        out.append(message)
    return out
