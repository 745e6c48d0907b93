"""The list endpoints' ``search[…]`` filters: which keys each endpoint honours and what a record must match.

``updated_min``/``updated_max`` are day-granular. FreshBooks does not document the time zone those days are
counted in; the model compares in ``search_zone`` (US/Eastern by default, the zone ``updated`` is written in;
``FreshBooksEmulator(search_zone="UTC")`` or the business's zone to try the others).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import InvoiceRecord

#: search keys each list endpoint honours; any other ``search[…]`` key is silently ignored, as FreshBooks does.
SEARCH_KEYS: dict[str, frozenset[str]] = {
    "client": frozenset({"updated_min", "updated_max", "vis_state", "email", "userids"}),
    "invoice": frozenset(
        {"updated_min", "updated_max", "vis_state", "date_min", "date_max", "customerid", "v3_status", "invoiceids"}
    ),
    "payment": frozenset({"updated_min", "updated_max", "vis_state", "invoiceid"}),
}


@dataclass(frozen=True)
class Search:
    """Parsed ``search[…]`` filters of one list call (``None`` = not given)."""

    updated_min: date | None = None
    updated_max: date | None = None  # exclusive
    date_min: date | None = None
    date_max: date | None = None  # inclusive
    customerid: int | None = None
    v3_status: str | None = None
    invoiceids: tuple[int, ...] | None = None
    invoiceid: int | None = None
    email: str | None = None
    userids: tuple[int, ...] | None = None
    vis_state: int | None = None

    @cached_property
    def id_set(self) -> frozenset[int] | None:
        """``invoiceids`` or ``userids`` as a set (a search scans every record)."""
        ids = self.invoiceids if self.invoiceids is not None else self.userids
        return None if ids is None else frozenset(ids)


def matches(kind: str, rec: Any, s: Search, *, updated_day: date, v3_status: Callable[[InvoiceRecord], str]) -> bool:
    """Whether record ``rec`` of ``kind`` passes every filter of ``s``.

    :param updated_day: the calendar day of ``rec.updated`` in the zone the search compares in.
    :param v3_status: the invoice's ``v3_status`` today (only called for a ``v3_status`` filter).
    """
    hidden = rec.vis_state == 1 if s.vis_state is None else rec.vis_state != s.vis_state
    if hidden:
        return False
    if s.updated_min is not None and updated_day < s.updated_min:
        return False
    if s.updated_max is not None and updated_day >= s.updated_max:
        return False
    if kind == "invoice":
        return (
            (s.date_min is None or rec.create_date >= s.date_min)
            and (s.date_max is None or rec.create_date <= s.date_max)
            and (s.customerid is None or rec.customerid == s.customerid)
            and (s.id_set is None or rec.id in s.id_set)
            and (s.v3_status is None or v3_status(rec) == s.v3_status)
        )
    if kind == "payment":
        return s.invoiceid is None or rec.invoiceid == s.invoiceid
    return (s.email is None or rec.email.lower() == s.email.lower()) and (s.id_set is None or rec.id in s.id_set)
