"""What Marketo must hold after the distributed run, computed independently of the pipeline.

The records are read straight from the FreshBooks emulators' models (not through the hook, the staging files,
the mirror or the ledger) and handed to the pure ``sync`` rules, window by window, exactly as docs/architecture.md pins
them. Marketo's side is read from the emulator's own state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from airflow_provider_fbmkto.sync.activities import invoice_sent_activities, overdue_activities, payment_activities
from airflow_provider_fbmkto.sync.config_schema import AccountConfig
from airflow_provider_fbmkto.sync.mapping import plan_companies, plan_leads
from airflow_provider_fbmkto.sync.matching import match_clients
from airflow_provider_fbmkto.sync.plan import MappingContext
from airflow_provider_fbmkto.sync.records import Client, Invoice, InvoiceStatus, Money, Payment, VisState
from airflow_provider_fbmkto.sync.window import Window, start_of_day
from airflow_provider_fbmkto.testing import FreshBooksEmulator, MarketoEmulator

#: (lead e-mail, activity type apiName, primary attribute, activity date as UTC ISO, sorted attributes)
ActivityKey = tuple[str, str, str, str, tuple[tuple[str, str], ...]]


def _value(raw: object) -> str:
    """An attribute value in one spelling: numbers without trailing zeros (``"10.50"`` and ``10.5`` agree)."""
    text = str(raw)
    try:
        number = Decimal(text)
    except ArithmeticError:
        return text
    return format(number.normalize(), "f") if number.is_finite() else text


def _attributes(pairs: Iterable[tuple[str, object]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, _value(value)) for name, value in pairs))


def _utc_iso(moment: datetime | str) -> str:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return moment.astimezone(timezone.utc).isoformat()


def sync_records(fb: FreshBooksEmulator) -> tuple[list[Client], list[Invoice], list[Payment]]:
    """The emulator's records (deleted and archived included) as ``sync`` records, from its model."""
    model = fb.model
    with model.lock:
        today = model.today()
        clients = [
            Client(
                id=c.id,
                email=c.email,
                fname=c.fname,
                lname=c.lname,
                organization=c.organization,
                currency_code=c.currency_code,
                updated=c.updated,
                vis_state=VisState(c.vis_state),
            )
            for c in model.clients.values()
        ]
        invoices = []
        currency_of: dict[int, str] = {}
        for i in model.invoices.values():
            status = i.status
            currency_of[i.id] = i.currency_code
            invoices.append(
                Invoice(
                    id=i.id,
                    invoice_number=i.invoice_number,
                    customerid=i.customerid,
                    create_date=i.create_date,
                    due_date=i.due_date,
                    due_offset_days=i.due_offset_days,
                    amount=Money(i.amount, i.currency_code),
                    outstanding=Money(i.outstanding, i.currency_code),
                    paid=Money(i.paid, i.currency_code),
                    status=InvoiceStatus(status),
                    v3_status=model.v3_status(i, today),
                    payment_status="paid" if status in (4, 5) else "partial" if status == 8 else "unpaid",
                    date_paid=i.date_paid,
                    updated=i.updated,
                    vis_state=VisState(i.vis_state),
                )
            )
        payments = [
            Payment(
                id=p.id,
                invoiceid=p.invoiceid,
                clientid=p.clientid,
                amount=Money(p.amount, currency_of.get(p.invoiceid, "USD")),
                date=p.date,
                type=p.type,
                updated=p.updated,
                vis_state=VisState(p.vis_state),
            )
            for p in model.payments.values()
        ]
    return clients, invoices, payments


def daily_windows(first: date, last: date, account: AccountConfig) -> list[Window]:
    """The data intervals of daily runs with logical dates ``first`` .. ``last`` (inclusive)."""
    out = []
    day = first
    while day <= last:
        out.append(Window(start_of_day(day, account.tz), start_of_day(day + timedelta(days=1), account.tz)))
        day += timedelta(days=1)
    return out


def expected_activities(fb: FreshBooksEmulator, account: AccountConfig, windows: Sequence[Window]) -> set[ActivityKey]:
    """Every custom activity the runs of ``windows`` must have written for ``account`` (one per key)."""
    clients, invoices, payments = sync_records(fb)
    by_id = {c.id: c for c in clients}
    ctx = MappingContext(account.name, fb.account_id, account.tz, account.activity_types)
    out: set[ActivityKey] = set()
    for window in windows:
        plans = (
            invoice_sent_activities(invoices, by_id, window, ctx),
            payment_activities(payments, by_id, {i.id: i for i in invoices}, window, ctx),
            overdue_activities(invoices, by_id, window, ctx, payments=payments),
        )
        for plan in plans:
            for a in plan.items:
                out.add(
                    (
                        a.lead_email,
                        a.activity_type,
                        a.primary_attribute_value,
                        _utc_iso(a.activity_date),
                        _attributes(a.attributes),
                    )
                )
    return out


def _dominant_currency(clients: Iterable[Client]) -> str | None:
    counts = Counter(c.currency_code for c in clients if not c.is_deleted and c.currency_code)
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0] if counts else None


def expected_leads_and_companies(
    fb: FreshBooksEmulator, account: AccountConfig, as_of: datetime
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``{email: fields}`` of the account's leads and ``{externalCompanyId: fields}`` of its companies."""
    clients, invoices, payments = sync_records(fb)
    ctx = MappingContext(account.name, fb.account_id, account.tz, account.activity_types)
    matches = match_clients(clients, account.matching.rules, account.matching.free_mail)
    currency = _dominant_currency(clients)
    leads = plan_leads(clients, invoices, payments, matches, as_of=as_of, ctx=ctx, currency=currency)
    companies = plan_companies(clients, invoices, payments, matches, as_of=as_of, ctx=ctx, currency=currency)
    return (
        {lead.email: lead.record() for lead in leads.items},
        {c.external_id: c.record() for c in companies.items},
    )


# --- Marketo's side -----------------------------------------------------------------------------------------


def marketo_activities(mkto: MarketoEmulator) -> Counter[ActivityKey]:
    """Every custom activity in the emulator, as comparable keys (a count > 1 is a duplicate)."""
    emails = {lead["id"]: str(lead.get("email", "")).lower() for lead in mkto.leads()}
    types = {t["id"]: t["apiName"] for t in mkto.activity_types()}
    out: Counter[ActivityKey] = Counter()
    for a in mkto.activities():
        attrs = _attributes((str(x.get("apiName") or x.get("name")), x.get("value")) for x in a["attributes"])
        out[
            (
                emails.get(a["leadId"], f"lead#{a['leadId']}"),
                types.get(a["activityTypeId"], str(a["activityTypeId"])),
                str(a.get("primaryAttributeValue")),
                _utc_iso(a["activityDate"]),
                attrs,
            )
        ] += 1
    return out


def same_value(expected: Any, actual: Any) -> bool:
    """Field equality across JSON renderings (``"10.50"`` vs ``10.5``, ``None`` vs absent)."""
    if expected is None or expected == "":
        return actual in (None, "")
    try:
        return Decimal(str(expected)) == Decimal(str(actual))
    except ArithmeticError:
        return str(expected) == str(actual)


def field_mismatches(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> list[str]:
    """Human-readable differences between expected and actual records (keyed alike)."""
    out = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            out.append(f"{key}: missing in Marketo")
            continue
        if key not in expected:
            out.append(f"{key}: in Marketo but not expected")
            continue
        for name, value in expected[key].items():
            if not same_value(value, actual[key].get(name)):
                out.append(f"{key}.{name}: expected {value!r}, Marketo has {actual[key].get(name)!r}")
    return out
