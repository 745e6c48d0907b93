"""Which clients a run plans companies and leads for, and how they are chunked (see ``planner``).

A client's group is its company (the matched company key) or, unmatched, its e-mail: a company is never
split across chunks (its summary needs all its clients), nor a lead's e-mail group. Across the account only
a compact array of (group hash, client id) is held.
"""

from __future__ import annotations

import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from airflow_provider_fbmkto.sync.matching import match_client
from airflow_provider_fbmkto.sync.records import Client

if TYPE_CHECKING:
    from airflow_provider_fbmkto.pipeline.context import RunContext

#: Clients whose invoices and payments are held in memory at once while planning companies and leads.
CLIENTS_PER_CHUNK = 1000
#: Group hashes are 23 bits, so (hash, client id) packs into one signed 64-bit integer (ids < 2**40). Two
#: groups sharing a hash only land in the same chunk, which changes nothing but the chunk's size.
_HASH_BITS, _ID_BITS = 23, 40


class Groups:
    """The groups a run plans: one of whose clients is affected -- every client on a first run or
    ``full_refresh``, else the clients whose records changed, those with an activity this run, and those
    sharing an e-mail some client left (``vacated``: moved away or deleted).

    ``still_used`` collects, during :meth:`pack`, the vacated e-mails a live client still has.
    """

    def __init__(
        self, ctx: RunContext, everyone: bool, touched: set[int], active_emails: set[str], vacated: set[str]
    ) -> None:
        self.rules = ctx.account.matching.rules
        self.free_mail = frozenset(d.lower() for d in ctx.account.matching.free_mail)
        self.everyone = everyone
        self.touched = touched
        self.active_emails = active_emails | vacated
        self.vacated = vacated
        self.still_used: set[str] = set()
        self.affected_count = 0

    def key(self, c: Client) -> str:
        match = None if c.is_deleted else match_client(c, self.rules, self.free_mail)
        return match.key if match else f"email:{c.email.strip().lower() or c.id}"

    def affected(self, c: Client) -> bool:
        return self.everyone or c.id in self.touched or c.email.strip().lower() in self.active_emails

    def pack(self, clients: Iterable[Client]) -> tuple[array[int], set[int] | None, str | None]:
        """One pass over the account's clients: ``(group hash << 40) | id`` of each, sorted; the hashes of the
        groups to plan (``None``: all); the dominant currency of the live clients."""
        packed: array[int] = array("q")
        wanted: set[int] | None = None if self.everyone else set()
        currencies: Counter[str] = Counter()
        for c in clients:
            if not c.is_deleted:
                if c.currency_code:
                    currencies[c.currency_code] += 1
                if self.vacated and (email := c.email.strip().lower()) in self.vacated:
                    self.still_used.add(email)
            group = zlib.crc32(self.key(c).encode()) & ((1 << _HASH_BITS) - 1)
            packed.append(group << _ID_BITS | c.id)
            if self.affected(c):
                self.affected_count += 1
                if wanted is not None:
                    wanted.add(group)
        currency = min(currencies.items(), key=lambda kv: (-kv[1], kv[0]))[0] if currencies else None
        return array("q", sorted(packed)), wanted, currency

    def whole_wanted(self, clients: Iterable[Client]) -> list[Client]:
        """The clients of the wanted groups among ``clients`` (a chunk of whole groups), by id."""
        ordered = sorted(clients, key=lambda c: c.id)
        if self.everyone:
            return ordered
        keys = {c.id: self.key(c) for c in ordered}
        wanted = {keys[c.id] for c in ordered if self.affected(c)}
        return [c for c in ordered if keys[c.id] in wanted]


def chunks(packed: array[int], wanted: set[int] | None) -> Iterator[list[int]]:
    """Client ids to plan together: whole wanted groups, about ``CLIENTS_PER_CHUNK`` clients a chunk."""
    chunk: list[int] = []
    previous = -1
    for value in packed:
        group, client_id = value >> _ID_BITS, value & ((1 << _ID_BITS) - 1)
        if group != previous and len(chunk) >= CLIENTS_PER_CHUNK:
            yield chunk
            chunk = []
        previous = group
        if wanted is None or group in wanted:
            chunk.append(client_id)
    if chunk:
        yield chunk
