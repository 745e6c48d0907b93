"""Property tests (hypothesis) the ``tests/sync`` suite does not have yet.

``tests/sync`` already checks: search days cover every instant in any UTC offset, Eastern wall time round trips,
planning is deterministic and order independent for one window, rule company keys are idempotent, a company's
status is the worst of its clients'. Added here, each stated against an independent computation:

* window arithmetic: consecutive windows bounded by local midnights give every date to exactly one window,
  in zones with DST gaps at 02:00, at midnight (Santiago), 30-minute shifts (Lord Howe) and 45-minute offsets;
* planning a span as several windows writes exactly what planning it as one window writes (no record lost or
  doubled at a window edge); overdue activities only where the invoice was unpaid at that window's end;
* matching: first matching rule wins, free-mail domains never match by domain, order of clients is irrelevant;
* leads: one per distinct live e-mail, whatever the case or order; deleted clients never get one;
* currencies: a summary's balance is the sum in its currency only; other currencies are listed, never added.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_fbmkto.sync.activities import invoice_sent_activities, overdue_activities, payment_activities
from airflow_provider_fbmkto.sync.health import summarize
from airflow_provider_fbmkto.sync.mapping import plan_leads
from airflow_provider_fbmkto.sync.matching import FREE_MAIL_DOMAINS, Rule, match_clients
from airflow_provider_fbmkto.sync.plan import MappingContext
from airflow_provider_fbmkto.sync.records import Client, VisState
from airflow_provider_fbmkto.sync.window import Window, window_dates
from tests.reliability.conftest import Figures
from tests.sync.sync_factories import client, invoice, payment

UTC = timezone.utc
ZONES = [
    "America/New_York",
    "Europe/London",
    "America/Santiago",  # DST changes at midnight: some days start at 01:00
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Asia/Kathmandu",  # +05:45, no DST
    "Pacific/Chatham",  # +12:45/+13:45
    "UTC",
]
EXAMPLES = 150
RUNS: Counter[str] = Counter()
TESTS = {
    "window_partition": "test_local_midnight_windows_partition_the_dates",
    "split_equals_union": "test_planning_split_windows_equals_planning_their_union",
    "matching": "test_matching_first_rule_wins_free_mail_never_by_domain_and_order_is_irrelevant",
    "leads": "test_one_lead_per_distinct_live_email_whatever_the_case_or_order",
    "currencies": "test_balances_never_add_across_currencies",
}
CLAIMS = {
    "window_partition": "consecutive windows bounded by local midnights give every date to exactly one window",
    "split_equals_union": "planning a span as several windows = planning it as one (sent, payments; overdue "
    "equal for unpaid invoices and only where unpaid at the window's end)",
    "matching": "first matching rule wins; free-mail never matches by domain; client order is irrelevant",
    "leads": "one lead per distinct live e-mail (case-insensitive), none for deleted clients, order-free",
    "currencies": "a summary's balance sums its own currency only; other currencies listed, never added",
}


@pytest.fixture(scope="module", autouse=True)
def _record_examples(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for key, claim in CLAIMS.items():
        if RUNS[key]:
            detail = {k.split(":", 1)[1]: n for k, n in RUNS.items() if k.startswith(f"{key}:")}
            Figures(f"{request.node.nodeid}::{TESTS[key]}").prop(key, claim=claim, examples=RUNS[key], **detail)


def local_midnight(d: date, tz: ZoneInfo) -> datetime:
    """Start of ``d`` in ``tz`` as UTC; a midnight inside a DST gap is the first instant after the gap."""
    naive = datetime(d.year, d.month, d.day)
    for minutes in range(0, 24 * 60, 15):
        candidate = (naive + timedelta(minutes=minutes)).replace(tzinfo=tz)
        back = candidate.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if back == candidate.replace(tzinfo=None):  # this wall time exists: the day starts here
            return candidate.astimezone(UTC)
    raise AssertionError(f"{d} has no start in {tz}")


spans = st.tuples(
    st.sampled_from(ZONES),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 1)),
    st.lists(st.integers(min_value=1, max_value=45), min_size=1, max_size=6),
)


def _windows(zone: str, first: date, lengths: list[int]) -> tuple[ZoneInfo, list[date], list[Window]]:
    tz = ZoneInfo(zone)
    edges = [first]
    for n in lengths:
        edges.append(edges[-1] + timedelta(days=n))
    bounds = [local_midnight(d, tz) for d in edges]
    return tz, edges, [Window(a, b) for a, b in itertools.pairwise(bounds)]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(spans, st.integers(min_value=-3, max_value=3))
def test_local_midnight_windows_partition_the_dates(span: tuple[str, date, list[int]], outside: int) -> None:
    RUNS["window_partition"] += 1
    RUNS["window_partition:zones"] = len(ZONES)
    tz, edges, windows = _windows(*span)
    day = edges[0]
    while day < edges[-1]:
        owners = [i for i, w in enumerate(windows) if w.contains_date(day, tz)]
        assert len(owners) == 1, (day, owners)
        assert edges[owners[0]] <= day < edges[owners[0] + 1]
        day += timedelta(days=1)
    ranges = [window_dates(w, tz) for w in windows]
    assert ranges == list(itertools.pairwise(edges))  # consecutive, gap-free, no overlap
    probe = edges[0] - timedelta(days=1 + abs(outside)) if outside < 0 else edges[-1] + timedelta(days=outside)
    assert not any(w.contains_date(probe, tz) for w in windows)


CTX_ZONE = "America/New_York"
CLIENTS = {c.id: c for c in (client(id=1, email="a@x.io"), client(id=2, email="b@y.io"))}

records = st.lists(
    st.tuples(
        st.integers(0, 120),  # create offset (days from the span start)
        st.sampled_from([0, 1, 14, 30]),  # due after
        st.sampled_from([1, 2]),  # client
        st.one_of(st.none(), st.integers(0, 150)),  # paid on (offset), or unpaid
    ),
    max_size=12,
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 6, 1)), records, st.lists(st.integers(1, 40), max_size=5)
)
def test_planning_split_windows_equals_planning_their_union(
    start: date, recs: list[tuple[int, int, int, int | None]], cuts: list[int]
) -> None:
    RUNS["split_equals_union"] += 1
    tz = ZoneInfo(CTX_ZONE)
    ctx = MappingContext("acme", "ACME01", tz)
    invoices, payments = [], []
    for i, (created, due_after, cid, paid_on) in enumerate(recs, start=1):
        c = start + timedelta(days=created)
        pd = None if paid_on is None else max(c, start + timedelta(days=paid_on))
        invoices.append(
            invoice(
                id=i,
                customerid=cid,
                create_date=c,
                due_date=c + timedelta(days=due_after),
                outstanding="0.00" if pd else None,
                date_paid=pd,
            )
        )
        if pd:
            payments.append(payment(id=100 + i, invoiceid=i, clientid=cid, on=pd))
    _, _, windows = _windows(CTX_ZONE, start, [*cuts, 200 - sum(cuts)] if sum(cuts) < 200 else cuts)
    union = Window(windows[0].start, windows[-1].end)
    by_id = {inv.id: inv for inv in invoices}

    def plan(w: Window) -> dict[str, set[tuple[str, datetime]]]:
        return {
            "sent": {(a.key, a.activity_date) for a in invoice_sent_activities(invoices, CLIENTS, w, ctx).items},
            "paid": {(a.key, a.activity_date) for a in payment_activities(payments, CLIENTS, by_id, w, ctx).items},
            "overdue": {
                (a.key, a.activity_date) for a in overdue_activities(invoices, CLIENTS, w, ctx, payments).items
            },
        }

    parts = [plan(w) for w in windows]
    whole = plan(union)
    RUNS["split_equals_union:activities_compared"] += sum(len(v) for v in whole.values())
    for kind in ("sent", "paid", "overdue"):
        keys = [k for p in parts for k, _ in p[kind]]
        assert len(keys) == len(set(keys)), f"{kind}: a key planned in two windows"
    assert set().union(*(p["sent"] for p in parts)) == whole["sent"]
    assert set().union(*(p["paid"] for p in parts)) == whole["paid"]
    split_overdue = set().union(*(p["overdue"] for p in parts))
    assert whole["overdue"] <= split_overdue  # unpaid at the union's end => unpaid at its own window's end
    unpaid = {f"invoice_overdue:acme:{i.id}:{i.due_date.isoformat()}" for i in invoices if i.date_paid is None}
    assert {x for x in split_overdue if x[0] in unpaid} == {x for x in whole["overdue"] if x[0] in unpaid}
    for w, p in zip(windows, parts, strict=True):
        assert all(w.contains(when) for kind in p.values() for _, when in kind)


DOMAINS = ["bigco.io", "eu.bigco.io", "gmail.com", "outlook.com", "smallco.com", "zeta.io"]
people = st.lists(
    st.tuples(
        st.sampled_from(["ann", "bob", "cfo", "Zed"]),
        st.sampled_from(DOMAINS),
        st.sampled_from([VisState.ACTIVE, VisState.ACTIVE, VisState.ARCHIVED, VisState.DELETED]),
        st.sampled_from(["", "BigCo", "Zeta"]),
    ),
    max_size=10,
)
RULE_POOL = [
    Rule(company="BigCo Holdings", domain="bigco.io"),
    Rule(company="SmallCo", email="CFO@smallco.com"),
    Rule(company="Client Three", client_id=3),
    Rule(company="Gmail Bob", email="bob@gmail.com"),
    Rule(company="Zeta Group", domain="ZETA.io"),
]


def _clients(spec: list[tuple[str, str, VisState, str]]) -> list[Client]:
    return [
        client(id=i, email=f"{name}@{domain}", organization=org, vis_state=vis)
        for i, (name, domain, vis, org) in enumerate(spec, start=1)
    ]


def _rule_hits(rule: Rule, c: Client) -> bool:
    email = c.email.lower()
    if rule.client_id is not None:
        return c.id == rule.client_id
    if rule.email is not None:
        return email == rule.email.lower()
    return email.rsplit("@", 1)[-1] == str(rule.domain).lower()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(people, st.permutations(RULE_POOL), st.randoms(use_true_random=False))
def test_matching_first_rule_wins_free_mail_never_by_domain_and_order_is_irrelevant(
    spec: list[tuple[str, str, VisState, str]], rules: list[Rule], rnd: random.Random
) -> None:
    RUNS["matching"] += 1
    clients = _clients(spec)
    matches = match_clients(clients, rules, FREE_MAIL_DOMAINS)
    shuffled = list(clients)
    rnd.shuffle(shuffled)
    assert match_clients(shuffled, rules, FREE_MAIL_DOMAINS) == matches
    for c in clients:
        m = matches.get(c.id)
        if c.is_deleted:
            assert m is None
            continue
        hits = [i for i, r in enumerate(rules) if _rule_hits(r, c)]
        domain = c.email.lower().rsplit("@", 1)[-1]
        if hits:
            assert m is not None
            assert m.rule_index == hits[0]
        elif domain in FREE_MAIL_DOMAINS:
            assert m is None
        else:
            assert m is not None
            assert (m.key, m.rule_index) == (domain, None)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(people, st.lists(st.booleans(), max_size=10), st.randoms(use_true_random=False))
def test_one_lead_per_distinct_live_email_whatever_the_case_or_order(
    spec: list[tuple[str, str, VisState, str]], upper: list[bool], rnd: random.Random
) -> None:
    RUNS["leads"] += 1
    clients = _clients(spec)
    clients = [
        client(id=c.id, email=c.email.upper() if i < len(upper) and upper[i] else c.email, vis_state=c.vis_state)
        for i, c in enumerate(clients)
    ]
    ctx = MappingContext("acme", "ACME01", ZoneInfo("UTC"))
    as_of = datetime(2025, 6, 1, tzinfo=UTC)
    plan = plan_leads(clients, [], [], {}, as_of=as_of, ctx=ctx)
    expected = {c.email.lower() for c in clients if not c.is_deleted}
    assert [lead.email for lead in plan.items] == sorted(expected)
    assert len({lead.key for lead in plan.items}) == len(plan.items)
    shuffled = list(clients)
    rnd.shuffle(shuffled)
    assert plan_leads(shuffled, [], [], {}, as_of=as_of, ctx=ctx).items == plan.items
    deleted = {c.email.lower() for c in clients if c.is_deleted} - expected
    assert not deleted & {lead.email for lead in plan.items}


money = st.tuples(
    st.sampled_from(["USD", "EUR", "CAD", "JPY"]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2),
    st.booleans(),  # deleted
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
@given(st.lists(money, max_size=10), st.sampled_from(["USD", "EUR", "CAD", "JPY"]))
def test_balances_never_add_across_currencies(items: list[tuple[str, Decimal, bool]], unit: str) -> None:
    RUNS["currencies"] += 1
    invoices = [
        invoice(id=i, amount=str(amount), currency=cur, vis_state=VisState.DELETED if gone else VisState.ACTIVE)
        for i, (cur, amount, gone) in enumerate(items, start=1)
    ]
    s = summarize(invoices, as_of=datetime(2025, 6, 1, tzinfo=UTC), tz=ZoneInfo("UTC"), currency=unit)
    per_currency: dict[str, Decimal] = {}
    for cur, amount, gone in items:
        if not gone:
            per_currency[cur] = per_currency.get(cur, Decimal(0)) + amount
    assert s.outstanding == per_currency.get(unit, Decimal(0))
    assert {m.currency: m.amount for m in s.other_outstanding} == {c: a for c, a in per_currency.items() if c != unit}
    assert s.invoice_count == sum(1 for *_, gone in items if not gone)
