"""The load's ownership gate: claim each lead e-mail and company key before writing it, hold other accounts' keys.

The rule is :func:`~airflow_provider_fbmkto.sync.ownership.verdict` (pure); the owners and the accounts' declared
sharing policies are in the state DB (:mod:`~airflow_provider_fbmkto.state.owners`). The gate declares this
account's policy once per load, then, for each claimed batch, claims the batch's keys (transactionally, before
the send: the owner is decided before anyone writes, so two processes cannot both create one person) and splits
the rows into the account's own, the shared (sent; a shared lead ``updateOnly``) and the held (skipped with
"owned by account <owner>", never sent).

What a held key covers: a company key holds the company upsert; a lead e-mail holds the lead upsert, the
activities on that person and its list membership.

A key the account owns stays its own until an operator releases it (``fbmkto owners release``), so the gate
remembers, for the rest of the load, the keys it found the account owning (at most ``MINE_CACHE``): the
activities and list rows of a person need no second look-up of who owns the e-mail. A release made while a load
runs takes effect from the account's next load.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_fbmkto.pipeline.reasons import owned_by
from airflow_provider_fbmkto.state.ledger import LedgerRow, LedgerStatus, RowOutcome
from airflow_provider_fbmkto.sync.matching import external_company_id
from airflow_provider_fbmkto.sync.ownership import COMPANY, SharingPolicy, Verdict, verdict

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB

__all__ = ["OwnershipGate", "Split"]

#: Keys the gate remembers the account owning, per load (about 0.1 kB each); forgotten all at once beyond it.
MINE_CACHE = 200_000


@dataclass
class Split:
    """One batch split by :meth:`OwnershipGate.split`."""

    own: list[LedgerRow] = field(default_factory=list)
    shared: list[LedgerRow] = field(default_factory=list)
    held: list[RowOutcome] = field(default_factory=list)
    #: key → owner, of the shared rows' keys
    owners: dict[str, str] = field(default_factory=dict)

    @property
    def sendable(self) -> list[LedgerRow]:
        """The rows that go out: own and shared."""
        return self.own + self.shared


class OwnershipGate:
    """Ownership of one account's load on one Marketo instance (thread-safe: senders run on several threads).

    :param db: the state DB.
    :param instance: the Marketo instance (``MarketoHook.instance``).
    :param account: the loading account.
    :param run_id: the run.
    :param policy: the account's sharing policy (:func:`~airflow_provider_fbmkto.sync.ownership.sharing_policy`).
    """

    def __init__(self, db: StateDB, instance: str, account: str, run_id: str, policy: SharingPolicy) -> None:
        self.db = db
        self.instance = instance
        self.account = account
        self.run_id = run_id
        self.policy = policy
        #: owner → rows held for it in this load
        self.held: Counter[str] = Counter()
        self._theirs: dict[str, SharingPolicy | None] = {}
        #: ``(kind, key)`` this account was found owning in this load (see the module doc)
        self._mine: set[tuple[str, str]] = set()
        self._declared = False
        self._lock = threading.Lock()

    def _policies(self, owners: set[str]) -> dict[str, SharingPolicy | None]:
        with self._lock:
            if not self._declared:
                self.db.owners.declare(self.instance, self.account, self.policy)
                self._declared = True
            unknown = owners - set(self._theirs)
        if unknown:
            found = self.db.owners.policies(self.instance, unknown)
            with self._lock:
                self._theirs.update({o: found.get(o) for o in unknown})
        with self._lock:
            return {o: self._theirs[o] for o in owners}

    def split(self, kind: str, rows: list[LedgerRow], key_of: Callable[[LedgerRow], str], what: str) -> Split:
        """Claim the rows' keys and split the rows (see the module doc).

        :param kind: ``lead`` (keys are e-mails) or ``company``.
        :param key_of: the owned key of a row (its e-mail or company key).
        :param what: how a held row's reason names its write, e.g. ``"lead"``, ``"activity on lead"``.
        """
        out = Split()
        if not rows:
            return out
        keys = {r.key: key_of(r).strip().lower() if kind != COMPANY else key_of(r) for r in rows}
        owners = self._claim(kind, set(keys.values()))
        policies = self._policies({o for o in owners.values() if o != self.account})
        for r in rows:
            key = keys[r.key]
            owner = owners.get(key, self.account)
            decision = verdict(self.account, kind, key, owner=owner, mine=self.policy, theirs=policies.get(owner))
            if decision is Verdict.SEND:
                out.own.append(r)
            elif decision is Verdict.SHARED:
                out.shared.append(r)
                out.owners[r.key] = owner
            else:
                out.held.append(RowOutcome(r.key, LedgerStatus.SKIPPED, None, self._reason(kind, key, owner, what)))
                with self._lock:
                    self.held[owner] += 1
        return out

    def _claim(self, kind: str, keys: set[str]) -> dict[str, str]:
        """key → owner of ``keys``, claiming those nobody owns; the keys already known to be the account's are not
        looked up again."""
        mine = self._mine
        with self._lock:
            unknown = {k for k in keys if (kind, k) not in mine}
        owners = {k: self.account for k in keys - unknown}
        if unknown:
            found = self.db.owners.claim(self.instance, kind, self.account, unknown, run_id=self.run_id)
            owners.update(found)
            with self._lock:
                if len(mine) + len(unknown) > MINE_CACHE:
                    mine.clear()
                mine.update((kind, k) for k, owner in found.items() if owner == self.account)
        return owners

    def _reason(self, kind: str, key: str, owner: str, what: str) -> str:
        replay = f"then replay: fbmkto ledger replay --account {self.account}"
        if kind == COMPANY:
            return owned_by(
                owner,
                f"{what} {external_company_id(key)}",
                f"to let both accounts write it give the company a matching rule with `shared: true` in both, {replay}",
            )
        return owned_by(
            owner, f"{what} {key}", f"to let both accounts write it set `marketo.leads.shared: true` in both, {replay}"
        )

    def note(self) -> str | None:
        """A line for the load's notes when writes were held, else ``None``."""
        if not self.held:
            return None
        by = ", ".join(f"{owner} ({n})" for owner, n in sorted(self.held.items()))
        return (
            f"{sum(self.held.values())} writes held: their Marketo person or company is owned by another account: {by}"
        )
