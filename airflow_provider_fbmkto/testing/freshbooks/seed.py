"""Deterministic seed data, generated straight into the model (no HTTP, no webhook events).

``seed(model, "demo")`` builds a small memorable business relative to ``as_of`` (default: the emulator's
today): 12 clients (10 on 4 company domains, 2 on free-mail), 41 invoices over the last 60 days with paid,
current, partial, overdue, draft and deleted ones.

Any other seed builds a larger realistic account from ``random.Random(<seed>)``: ``clients`` clients (about
30% on free-mail domains, the rest sharing company domains, ~4 per domain), 0..2x ``invoices_per_client``
invoices each over ``months`` months before ``as_of``, about 12% of them on edge days (US DST switches with
``updated`` stamps around the switch, month and year ends with stamps around Eastern midnight), drafts,
paid, partially paid, overdue, deleted and archived records, mostly USD with some CAD and EUR. Same seed,
sizes and ``as_of`` → identical data (ids included, on an empty model). 100k records take a few seconds.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .models import CENT, ClientRecord, FreshBooksModel, InvoiceRecord, PaymentRecord
from .timeutil import dst_transition, eastern_date, eastern_wall_to_utc, end_of_eastern_day


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FREE_MAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com", "aol.com", "proton.me")
_FIRST = _words(
    "Ada Alan Ana Ben Carla Chen Dana Eli Emma Farah Gus Hana Ivan Jin Kara Leo Lina "
    "Marco Mia Nia Omar Pia Quinn Raj Rosa Sam Sara Theo Uma Vik Wen Xena Yara Zane"
)
_LAST = _words(
    "Abbott Baker Castro Diaz Evans Fischer Garcia Haddad Ito Jensen Khan Lopez Moreau "
    "Nakamura Olsen Patel Quintero Rossi Silva Tanaka Ueda Vargas Walsh Xu Young Zimmer"
)
_WORD_A = _words("Blue Bright Cedar Copper Delta Green Harbor Iron Lumen North Oak Pine Silver Summit True Vista")
_WORD_B = _words("Analytics Bakery Builders Digital Foods Freight Health Labs Logistics Media Partners Robotics Studio")
_TLDS = (".com", ".com", ".com", ".io", ".co", ".net", ".ca", ".de")
_OFFSETS = (0, 7, 14, 15, 30, 30, 30, 30, 45, 60)
_PAY_TYPES = ("Check", "Credit", "Bank Transfer", "Cash", "VISA", "MasterCard", "PayPal", "ACH")


def seed(
    model: FreshBooksModel,
    seed: str | int,
    *,
    clients: int = 50,
    invoices_per_client: int = 4,
    months: int = 24,
    as_of: date | None = None,
) -> dict[str, int]:
    """Add deterministic data to ``model``; returns how many clients/invoices/payments were added.

    :param seed: ``"demo"`` for the small demo business, anything else for generated data.
    :param clients: number of clients (generated data only).
    :param invoices_per_client: mean invoices per client (each gets 0..2x this).
    :param months: how far back invoices go from ``as_of``.
    :param as_of: the "today" the data is relative to (default: the model clock's US/Eastern date).
        Nothing is stamped after it (nor after the clock, when ``as_of`` is today).
    """
    as_of = as_of or model.today()
    cap = end_of_eastern_day(as_of)
    if as_of >= model.today():
        cap = min(cap, model.now())
    builder = _Builder(model, cap)
    if str(seed) == "demo":
        _demo(builder, as_of)
    else:
        _generate(builder, random.Random(f"fbmkto-seed:{seed}"), clients, invoices_per_client, months, as_of)
    return builder.flush()


class _Builder:
    """Collects records, then inserts them in time order so ids and invoice numbers grow with time."""

    def __init__(self, model: FreshBooksModel, cap: datetime) -> None:
        self.model = model
        self.cap = cap
        self.clients: list[dict[str, Any]] = []
        self.invoices: list[tuple[datetime, int, dict[str, Any], list[dict[str, Any]]]] = []

    def clip(self, moment: datetime) -> datetime:
        return min(moment, self.cap)

    def client(self, **fields: Any) -> int:
        self.clients.append(fields)
        return len(self.clients) - 1

    def invoice(self, client_index: int, fields: dict[str, Any], payments: list[dict[str, Any]]) -> None:
        fields["client_index"] = client_index
        self.invoices.append((fields["created"], len(self.invoices), fields, payments))

    def flush(self) -> dict[str, int]:
        m = self.model
        counts = {"clients": 0, "invoices": 0, "payments": 0}
        with m.lock:
            order = sorted(range(len(self.clients)), key=lambda i: (self.clients[i]["created"], i))
            ids: dict[int, int] = {}
            for i in order:
                f = self.clients[i]
                created = self.clip(f.pop("created"))
                updated = max(created, self.clip(f.pop("updated", created)))
                rec = ClientRecord(
                    id=m.next_id("client"), created=created, updated=updated, updated_day=eastern_date(updated), **f
                )
                ids[i] = m.insert_client(rec).id
                counts["clients"] += 1
            pending: list[tuple[datetime, int, PaymentRecord]] = []
            for created, _, f, payments in sorted(self.invoices, key=lambda t: (t[0], t[1])):
                created = self.clip(created)
                updated = max(created, self.clip(f.pop("updated", created)))
                client = m.clients[ids[f.pop("client_index")]]
                f.pop("created")
                inv = InvoiceRecord(
                    id=m.next_id("invoice"),
                    invoice_number=m.next_invoice_number(),
                    customerid=client.id,
                    currency_code=client.currency_code,
                    created=created,
                    updated=updated,
                    updated_day=eastern_date(updated),
                    **f,
                )
                m.insert_invoice(inv)
                counts["invoices"] += 1
                for p in payments:
                    when = max(created, self.clip(p.pop("at")))
                    pay = PaymentRecord(
                        id=0,
                        invoiceid=inv.id,
                        clientid=client.id,
                        created=when,
                        updated=when,
                        updated_day=eastern_date(when),
                        **p,
                    )
                    pending.append((when, len(pending), pay))
            for _, _, queued in sorted(pending, key=lambda t: (t[0], t[1])):
                queued.id = m.next_id("payment")
                m.insert_payment(queued)
                counts["payments"] += 1
        return counts


# --- the demo business -------------------------------------------------------------------------------------

# (company, domain, currency, [(fname, lname, email local part)])
_DEMO_COMPANIES = (
    (
        "Bluepeak Analytics",
        "bluepeak.io",
        "USD",
        [("Maya", "Chen", "maya.chen"), ("Tom", "Alvarez", "tom.alvarez"), ("Priya", "Nair", "accounts")],
    ),
    (
        "Harborline Logistics",
        "harborline.com",
        "USD",
        [("Sam", "Okafor", "sam.okafor"), ("Lena", "Fischer", "lena.fischer"), ("Diego", "Santos", "diego.santos")],
    ),
    ("Copperleaf Studio", "copperleaf.co", "USD", [("Ava", "Thompson", "ava"), ("Noah", "Kim", "noah")]),
    (
        "Northwind Traders",
        "northwind-traders.ca",
        "CAD",
        [("Grace", "Liu", "grace.liu"), ("Omar", "Haddad", "omar.haddad")],
    ),
)
_DEMO_FREEMAIL = (
    ("Jordan", "Blake", "jordan.blake@gmail.com", "Blake Consulting"),
    ("Riley", "Moore", "riley.moore@outlook.com", ""),
)
# per client, in the order above: (days ago created, due offset, amount, outcome, outcome arg)
# outcomes: paid (days after creation), partial ((fraction, days after)), unpaid, draft, deleted
_DEMO_INVOICES: tuple[tuple[tuple[int, int, str, str, Any], ...], ...] = (
    ((58, 30, "2400.00", "paid", 21), (28, 30, "2400.00", "paid", 12), (4, 30, "1850.00", "unpaid", None)),
    (
        (50, 15, "980.00", "paid", 9),
        (20, 15, "1200.00", "paid", 5),
        (9, 30, "760.00", "unpaid", None),
        (2, 15, "640.00", "draft", None),
    ),
    ((45, 30, "3100.00", "paid", 30), (15, 30, "3100.00", "unpaid", None), (35, 30, "150.00", "deleted", None)),
    (
        (59, 15, "4200.00", "paid", 14),
        (40, 15, "3900.00", "unpaid", None),
        (25, 15, "2200.00", "paid", 10),
        (12, 15, "2750.00", "unpaid", None),
    ),
    (
        (52, 30, "1500.00", "paid", 33),
        (38, 30, "1650.00", "unpaid", None),
        (18, 30, "1400.00", "partial", ("0.5", 10)),
        (5, 30, "1500.00", "draft", None),
    ),
    (
        (47, 14, "820.00", "paid", 13),
        (33, 14, "910.00", "paid", 20),
        (21, 14, "870.00", "unpaid", None),
        (6, 14, "900.00", "unpaid", None),
    ),
    ((44, 60, "5200.00", "partial", ("0.4", 12)), (20, 30, "2600.00", "paid", 8), (7, 30, "3300.00", "unpaid", None)),
    ((36, 45, "1250.00", "partial", ("0.6", 20)), (14, 30, "980.00", "unpaid", None), (1, 30, "450.00", "draft", None)),
    ((57, 30, "6400.00", "paid", 25), (31, 30, "6400.00", "paid", 28), (10, 30, "6400.00", "paid", 6)),
    ((42, 15, "2150.00", "paid", 15), (16, 15, "1980.00", "paid", 11), (3, 15, "800.00", "paid", 2)),
    ((54, 14, "700.00", "paid", 10), (30, 14, "850.00", "unpaid", None), (13, 14, "600.00", "unpaid", None)),
    (
        (48, 7, "300.00", "paid", 3),
        (22, 7, "350.00", "paid", 6),
        (8, 14, "325.00", "unpaid", None),
        (0, 7, "275.00", "draft", None),
    ),
)


def _demo(b: _Builder, as_of: date) -> None:
    people: list[tuple[str, str, str, str, str]] = []
    for company, domain, currency, contacts in _DEMO_COMPANIES:
        people += [(fn, ln, f"{local}@{domain}", company, currency) for fn, ln, local in contacts]
    people += [(fn, ln, email, org, "USD") for fn, ln, email, org in _DEMO_FREEMAIL]
    for index, ((fname, lname, email, org, currency), invoices) in enumerate(zip(people, _DEMO_INVOICES, strict=True)):
        signup = eastern_wall_to_utc(as_of - timedelta(days=90 - index), 9, index)
        ci = b.client(email=email, fname=fname, lname=lname, organization=org, currency_code=currency, created=signup)
        for n, (ago, offset, amount, outcome, arg) in enumerate(invoices):
            day = as_of - timedelta(days=ago)
            created = eastern_wall_to_utc(day, 10, index * 4 + n)
            payments = []
            if outcome == "paid":
                pay_day = day + timedelta(days=arg)
                payments.append(_pay(Decimal(amount), pay_day, "Bank Transfer", index))
            elif outcome == "partial":
                fraction, after = arg
                pay_day = day + timedelta(days=after)
                payments.append(_pay((Decimal(amount) * Decimal(fraction)).quantize(CENT), pay_day, "VISA", index))
            fields: dict[str, Any] = {
                "create_date": day,
                "due_offset_days": offset,
                "amount": Decimal(amount),
                "created": created,
                "base_status": 1 if outcome == "draft" else 2,
            }
            if outcome == "deleted":
                fields["vis_state"] = 1
                fields["updated"] = created + timedelta(days=2)
            b.invoice(ci, fields, payments)


def _pay(amount: Decimal, day: date, kind: str, minute: int) -> dict[str, Any]:
    return {"amount": amount, "date": day, "type": kind, "at": eastern_wall_to_utc(day, 14, minute)}


# --- generated data ----------------------------------------------------------------------------------------


def _months_back(as_of: date, months: int) -> date:
    total = as_of.year * 12 + as_of.month - 1 - months
    return date(total // 12, total % 12 + 1, min(as_of.day, 28))


def _edge_days(start: date, end: date) -> list[tuple[date, str]]:
    """DST switch days, month ends and month starts in ``[start, end]`` (with what makes each an edge)."""
    out: list[tuple[date, str]] = []
    day = start
    while day <= end:
        if day.month in (3, 11) and day.weekday() == 6 and dst_transition(day) is not None:
            out.append((day, "dst"))
        if (day + timedelta(days=1)).day == 1:
            out.append((day, "month_end"))
        if day.day == 1:
            out.append((day, "month_start"))
        day += timedelta(days=1)
    return out


def _edge_instant(rng: random.Random, day: date, why: str) -> datetime:
    if why == "dst":
        switch = dst_transition(day)
        assert switch is not None
        return switch + timedelta(minutes=rng.randint(-90, 90))
    midnight = eastern_wall_to_utc(day + timedelta(days=1), 0) if why == "month_end" else eastern_wall_to_utc(day, 0)
    instant = midnight + timedelta(minutes=rng.randint(-45, 45))
    return instant if eastern_date(instant) == day else midnight + (timedelta(minutes=-1 if why == "month_end" else 1))


def _business_instant(rng: random.Random, day: date) -> datetime:
    return eastern_wall_to_utc(day, rng.randint(8, 18), rng.randint(0, 59), rng.randint(0, 59))


def _company(rng: random.Random, used: set[str]) -> tuple[str, str]:
    while True:
        a, b = rng.choice(_WORD_A), rng.choice(_WORD_B)
        domain = f"{a}{b}".lower() + rng.choice(_TLDS)
        if domain not in used:
            used.add(domain)
            return f"{a} {b}", domain
        if len(used) > len(_WORD_A) * len(_WORD_B) * 4:  # tiny vocabulary exhausted: number the domain
            domain = f"{a}{b}{len(used)}".lower() + ".com"
            used.add(domain)
            return f"{a} {b} {len(used)}", domain


def _generate(b: _Builder, rng: random.Random, n_clients: int, ipc: int, months: int, as_of: date) -> None:
    start = _months_back(as_of, months)
    span = (as_of - start).days
    edges = _edge_days(start, as_of)
    used: set[str] = set()
    companies = [_company(rng, used) for _ in range(max(1, n_clients // 4))]
    emails: set[str] = set()
    for _ in range(n_clients):
        fname, lname = rng.choice(_FIRST), rng.choice(_LAST)
        if rng.random() < 0.3:
            domain, org = rng.choice(FREE_MAIL_DOMAINS), (f"{lname} Consulting" if rng.random() < 0.5 else "")
        else:
            org, domain = companies[rng.randrange(len(companies))]
        local = rng.choice((f"{fname}.{lname}", f"{fname[0]}{lname}", fname, f"{fname}_{lname}")).lower()
        email, n = f"{local}@{domain}", 1
        while email in emails:
            n += 1
            email = f"{local}{n}@{domain}"
        emails.add(email)
        r = rng.random()
        currency = "USD" if r < 0.85 else "CAD" if r < 0.95 else "EUR"
        r = rng.random()
        vis_state = 1 if r < 0.03 else 2 if r < 0.07 else 0
        signup_day = start + timedelta(days=rng.randint(0, span))
        created = _business_instant(rng, signup_day)
        later = created + timedelta(days=rng.randint(1, 400)) if rng.random() < 0.3 or vis_state else created
        ci = b.client(
            email=email,
            fname=fname,
            lname=lname,
            organization=org,
            currency_code=currency,
            vis_state=vis_state,
            created=created,
            updated=later,
        )
        for _ in range(rng.randint(0, 2 * ipc) if ipc else 0):
            _invoice(b, rng, ci, signup_day, as_of, edges)


def _invoice(
    b: _Builder, rng: random.Random, ci: int, first_day: date, as_of: date, edges: list[tuple[date, str]]
) -> None:
    usable = [e for e in edges if e[0] >= first_day]
    if usable and rng.random() < 0.12:
        day, why = rng.choice(usable)
        created = _edge_instant(rng, day, why)
    else:
        day = first_day + timedelta(days=rng.randint(0, (as_of - first_day).days))
        created = _business_instant(rng, day)
    offset = rng.choice(_OFFSETS)
    amount = (Decimal(rng.randint(5000, 500000)) / 100).quantize(CENT)
    age = (as_of - day).days
    r = rng.random()
    outcome = "draft" if age < 14 and rng.random() < 0.3 else "paid" if r < 0.55 else "partial" if r < 0.67 else "open"
    fields: dict[str, Any] = {
        "create_date": day,
        "due_offset_days": offset,
        "amount": amount,
        "created": created,
        "base_status": 1 if outcome == "draft" else rng.choice((2, 3)),
        "auto_paid": outcome == "paid" and rng.random() < 0.05,
    }
    r = rng.random()
    if r < 0.02:
        fields["vis_state"] = 1
        fields["updated"] = created + timedelta(days=rng.randint(0, 60), minutes=rng.randint(1, 600))
    elif r < 0.04:
        fields["vis_state"] = 2
        fields["updated"] = created + timedelta(days=rng.randint(0, 90), minutes=rng.randint(1, 600))
    payments: list[dict[str, Any]] = []
    if outcome in ("paid", "partial"):
        if outcome == "partial":
            parts = [(amount * Decimal(rng.randint(20, 70)) / 100).quantize(CENT)]
        elif rng.random() < 0.2:
            first = (amount * Decimal(rng.randint(30, 70)) / 100).quantize(CENT)
            parts = [first, amount - first]
        else:
            parts = [amount]
        for part in parts:
            pay_day = day + timedelta(days=rng.randint(0, max(0, min(offset + 20, age))))
            payment = _pay(part, pay_day, rng.choice(_PAY_TYPES), rng.randint(0, 59))
            payment["at"] = _business_instant(rng, pay_day)
            if rng.random() < 0.01:
                payment["vis_state"] = 1
            payments.append(payment)
    b.invoice(ci, fields, payments)
