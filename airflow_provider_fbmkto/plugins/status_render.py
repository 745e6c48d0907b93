"""The status page as plain HTML with inline SVG: no script, no front-end build.

Every value that comes from data (account names, ledger keys, e-mail addresses inside keys, Marketo's reasons,
run ids, config problems) goes through :func:`esc`; the page also ships a Content-Security-Policy without
``script-src`` (see :mod:`.status`), so even a missed escape could not run script.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from airflow_provider_fbmkto.plugins.status_data import (
    KINDS,
    SHOWN_STATUSES,
    AccountStatus,
    BudgetStatus,
    Counts,
    FailureRow,
    TokenHealth,
)

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.events import EventFailure

KIND_COLOURS = {"company": "#4c78a8", "lead": "#f58518", "activity": "#54a24b", "list": "#b279a2"}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1rem 1.5rem;color:#1a202c;
font-size:14px}
h1{font-size:1.35rem;margin:0 0 .2rem} h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
h3{font-size:1rem;margin:.8rem 0 .3rem}
.sub{color:#4a5568;margin-bottom:1rem} table{border-collapse:collapse} th,td{padding:.3rem .5rem;vertical-align:top}
table.main>thead>tr>th{background:#edf2f7;text-align:left;border-bottom:2px solid #cbd5e0}
table.main>tbody>tr>td{border-bottom:1px solid #e2e8f0}
table.counts th,table.counts td{padding:.05rem .35rem;font-size:12px;text-align:right}
table.counts th:first-child{text-align:left;color:#4a5568;font-weight:normal}
.ok{color:#276749} .warn{color:#975a16} .error{color:#c53030} code{background:#f7fafc;padding:0 .2rem}
.notice{padding:.5rem .8rem;border-radius:4px;margin:.5rem 0} .notice.ok{background:#f0fff4;border:1px solid #9ae6b4}
.notice.error{background:#fff5f5;border:1px solid #feb2b2} .bar{background:#e2e8f0;width:8rem;height:.5rem}
.bar>span{display:block;height:.5rem;background:#3182ce} button{cursor:pointer;margin:.1rem 0}
td.reason{max-width:32rem;word-break:break-word} .muted{color:#718096} form.inline{display:inline}
"""


def esc(value: object) -> str:
    """HTML-escape ``value`` for text and for quoted attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def when(value: datetime | None) -> str:
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Notice:
    """A banner at the top of the page (the outcome of an action)."""

    level: str
    text: str


@dataclass(frozen=True)
class PageContext:
    """Where the page lives and who looks at it.

    :param base: URL path of the plugin app (``/fbmkto``), for the forms.
    :param airflow_root: URL path of Airflow's UI, for links to DAGs.
    :param csrf: the token the forms carry (double-submit cookie).
    """

    base: str
    airflow_root: str
    user: str
    csrf: str
    now: datetime


def counts_table(counts: Counts, testid: str) -> str:
    """Written/skipped/failed per kind; every cell carries a ``data-testid`` (``<testid>-<kind>-<status>``)."""
    head = "".join(f"<th>{esc(s)}</th>" for s in SHOWN_STATUSES)
    rows = []
    for kind in KINDS:
        per = counts.get(kind, {})
        cells = "".join(
            f'<td data-testid="{esc(testid)}-{kind}-{status}">{int(per.get(status, 0))}</td>'
            for status in SHOWN_STATUSES
        )
        rows.append(f"<tr><th>{kind}</th>{cells}</tr>")
    return f'<table class="counts" data-testid="{esc(testid)}"><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def budget_cell(budget: BudgetStatus, testid: str) -> str:
    if budget.error is not None:
        return f'<span class="error" data-testid="{esc(testid)}-error">{esc(budget.error)}</span>'
    pct = round((budget.fraction or 0.0) * 100)
    level = "error" if pct >= 95 else "warn" if pct >= 80 else "ok"
    reserve = "" if budget.usable == budget.daily_budget else f" (budget {budget.daily_budget}, rest reserved)"
    return (
        f'<span data-testid="{esc(testid)}-used">{budget.used}</span> of '
        f'<span data-testid="{esc(testid)}-limit">{budget.usable}</span>{esc(reserve)}'
        f'<div class="bar" title="{pct}%"><span style="width:{pct}%"></span></div>'
        f'<span class="{level}">{pct}%</span> <span class="muted">· {esc(budget.instance)} · resets '
        f"{esc(when(budget.resets_at))}</span>{share_line(budget, testid)}"
    )


def share_line(budget: BudgetStatus, testid: str) -> str:
    """This account's calls today, against its ``daily_budget_share`` when it has one."""
    if budget.account_used is None:
        return ""
    used = f'<span data-testid="{esc(testid)}-account-used">{budget.account_used}</span>'
    if budget.share is None:
        return f"<br>this account: {used}"
    return (
        f"<br>this account: {used} of its share "
        f'<span data-testid="{esc(testid)}-account-limit">{budget.account_limit}</span> '
        f'<span class="muted">(daily_budget_share {esc(budget.share)})</span>'
    )


def report_notes(summary: Mapping[str, object] | None, name: str) -> str:
    """What the last run's stored report says beyond its counts: this run's failures, a stop for the budget share."""
    if not summary:
        return ""
    parts = []
    failures = summary.get("failures")
    if isinstance(failures, list) and failures:
        parts.append(
            f'<span class="warn" data-testid="report-{esc(name)}-failures">{len(failures)}</span> rows of '
            "this run need attention"
        )
    stopped = summary.get("stopped")
    if isinstance(stopped, Mapping):
        parts.append(
            f'<span class="warn" data-testid="stopped-{esc(name)}">load stopped at its daily budget share; '
            f"{esc(stopped.get('rows_waiting'))} rows wait for the next run</span>"
        )
    return "".join(f"<br>{p}" for p in parts)


def token_cell(token: TokenHealth, testid: str) -> str:
    fix = f'<br>run <code data-testid="{esc(testid)}-fix">{esc(token.fix)}</code>' if token.fix else ""
    return f'<span class="{esc(token.level)}" data-testid="{esc(testid)}">{esc(token.message)}</span>{fix}'


def _form(ctx: PageContext, action: str, account: str, label: str, testid: str) -> str:
    return (
        f'<form class="inline" method="post" action="{esc(ctx.base)}/status/{action}">'
        f'<input type="hidden" name="account" value="{esc(account)}">'
        f'<input type="hidden" name="csrf" value="{esc(ctx.csrf)}">'
        f'<button type="submit" data-testid="{esc(testid)}">{esc(label)}</button></form>'
    )


def account_row(a: AccountStatus, ctx: PageContext) -> str:
    name = a.name
    success = (
        f"{esc(when(a.last_success.window_start))} →<br>{esc(when(a.last_success.window_end))}"
        if a.last_success is not None
        else '<span class="muted">no successful run yet</span>'
    )
    if a.last_run is not None:
        run = a.last_run
        state = "ok" if run.status == "success" else "error" if run.status == "failed" else "warn"
        last = (
            f'<span class="{state}" data-testid="lastrun-{esc(name)}-status">{esc(run.status)}</span> '
            f'<span class="muted">{esc(run.run_id)}</span>{counts_table(a.last_run_counts, f"run-{name}")}'
            f"{report_notes(run.summary, name)}"
        )
    else:
        last = '<span class="muted">no run yet</span>'
    dag_link = f'<a href="{esc(ctx.airflow_root)}/dags/{esc(a.dag_id)}" target="_top">{esc(a.dag_id)}</a>'
    actions = _form(ctx, "replay", name, f"Replay failed ({a.needs_attention})", f"replay-{name}")
    actions += "<br>" + _form(ctx, "check-token", name, "Check FreshBooks authorization", f"check-{name}")
    return (
        f'<tr data-account="{esc(name)}"><td><strong>{esc(name)}</strong><br>{dag_link}<br>'
        f'<span class="muted">{esc(a.freshbooks_conn_id)} → {esc(a.marketo_conn_id)}</span></td>'
        f"<td>{success}</td><td>{last}</td><td>{counts_table(a.week_counts, f'week-{name}')}</td>"
        f"<td>{budget_cell(a.budget, f'budget-{name}')}</td><td>{token_cell(a.token, f'token-{name}')}</td>"
        f"<td>{actions}</td></tr>"
    )


def activity_chart(daily: Mapping[date, Mapping[str, int]], *, title: str, testid: str) -> str:
    """Grouped bars: ledger rows written per day and kind. Server-rendered SVG with a ``<title>`` per bar."""
    days = sorted(daily)
    width, height, left, bottom, top = 700, 190, 36, 24, 22
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max([n for d in days for n in daily[d].values()] + [1])
    slot = plot_w / max(1, len(days))
    bar = max(1.0, (slot - 4) / len(KINDS))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(title)}" data-testid="{esc(testid)}" font-size="10" font-family="sans-serif">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="#a0aec0"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for i, day in enumerate(days):
        x0 = left + i * slot + 2
        for j, kind in enumerate(KINDS):
            n = int(daily[day].get(kind, 0))
            h = plot_h * n / peak
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar - 0.5:.1f}" height="{h:.1f}" '
                f'fill="{KIND_COLOURS[kind]}" data-day="{day.isoformat()}" data-kind="{kind}" data-count="{n}">'
                f"<title>{day.isoformat()} {kind}: {n} written</title></rect>"
            )
        if i % 2 == 0 or len(days) <= 7:
            parts.append(f'<text x="{x0 + slot / 2 - 2:.1f}" y="{height - 8}" text-anchor="middle">{day:%m-%d}</text>')
    for j, kind in enumerate(KINDS):
        lx = left + j * 90
        parts.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{KIND_COLOURS[kind]}"/>')
        parts.append(f'<text x="{lx + 14}" y="13">{kind}</text>')
    parts.append("</svg>")
    return "".join(parts)


def failures_section(
    rows: Sequence[FailureRow],
    ctx: PageContext,
    *,
    accounts: Sequence[str],
    account: str | None,
    kind: str | None,
    status: str | None,
) -> str:
    def options(values: Sequence[str], chosen: str | None, everything: str) -> str:
        opts = [f'<option value="">{esc(everything)}</option>']
        opts += [f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v)}</option>' for v in values]
        return "".join(opts)

    form = (
        f'<form method="get" action="{esc(ctx.base)}/status" data-testid="failure-filters">'
        f'account <select name="account">{options(accounts, account, "all")}</select> '
        f'kind <select name="kind">{options(KINDS, kind, "all")}</select> '
        f'status <select name="status">{options(("failed", "skipped"), status, "failed and skipped")}</select> '
        '<button type="submit">Filter</button></form>'
    )
    if not rows:
        return form + '<p class="muted" data-testid="no-failures">No skipped or failed rows match.</p>'
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "account",
            "key",
            "kind",
            "status",
            "attempts",
            "Marketo's reason",
            "next",
            "first seen",
            "last seen",
        )
    )
    body = "".join(
        f'<tr data-testid="failure-row"><td>{esc(r.account)}</td><td><code>{esc(r.key)}</code></td>'
        f'<td>{esc(r.kind)}</td><td class="{"error" if r.status == "failed" else "warn"}">{esc(r.status)}</td>'
        f'<td>{r.attempts}</td><td class="reason">{esc(r.reason or "—")}</td>'
        f'<td data-testid="next-step" data-retry="{esc(r.retry)}">{esc(r.next_step)}</td>'
        f"<td>{esc(when(r.first_seen))}</td><td>{esc(when(r.last_seen))}</td></tr>"
        for r in rows
    )
    return (
        f'{form}<table class="main" data-testid="failures"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def events_section(rows: Sequence[EventFailure]) -> str:
    """Webhook events whose record FreshBooks would not give (shown under the failures; empty when none)."""
    if not rows:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("account", "event", "record", "status", "failed reads", "reason", "received", "last tried")
    )
    body = "".join(
        f'<tr data-testid="event-failure-row"><td>{esc(f.account)}</td><td>{esc(f.event_id)} {esc(f.name)}</td>'
        f"<td><code>{esc(f.object_id)}</code></td>"
        f'<td class="{"error" if f.failed else "warn"}">{"failed" if f.failed else "retrying"}</td>'
        f'<td>{f.attempts}</td><td class="reason">{esc(f.reason)}</td>'
        f"<td>{esc(when(f.received_at))}</td><td>{esc(when(f.last_attempt_at))}</td></tr>"
        for f in rows
    )
    return (
        "<h3>Webhook events not read (failed: no run reads them again; retrying: the next run does)</h3>"
        f'<table class="main" data-testid="event-failures"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def page(
    ctx: PageContext,
    statuses: Sequence[AccountStatus],
    failures: str,
    *,
    problems: Sequence[str] = (),
    config_path: str = "",
    notice: Notice | None = None,
) -> str:
    """The whole page."""
    banner = f'<div class="notice {esc(notice.level)}" data-testid="notice">{esc(notice.text)}</div>' if notice else ""
    problem_list = (
        '<div class="notice error" data-testid="config-problems"><strong>Accounts config problems</strong><ul>'
        + "".join(f"<li>{esc(p)}</li>" for p in problems)
        + "</ul></div>"
        if problems
        else ""
    )
    if statuses:
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "Account",
                "Last successful window",
                "Last run (written / skipped / failed)",
                "Last 7 days",
                "Marketo calls today",
                "FreshBooks authorization",
                "Actions",
            )
        )
        table = (
            f'<table class="main" data-testid="accounts"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(account_row(a, ctx) for a in statuses)
            + "</tbody></table>"
        )
        charts = "".join(
            f"<h3>{esc(a.name)}</h3>"
            + activity_chart(a.daily, title=f"rows written per day, {a.name}", testid=f"chart-{a.name}")
            for a in statuses
        )
    else:
        table = (
            '<p class="muted" data-testid="no-accounts">No account to show (none configured, or none you may read).</p>'
        )
        charts = ""
    query = urlencode({"account": "", "kind": "", "status": ""})
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>FreshBooks → Marketo sync status</title>"
        f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head><body>'
        f"<h1>FreshBooks → Marketo sync status</h1>"
        f'<div class="sub">signed in as <strong>{esc(ctx.user)}</strong> · as of {esc(when(ctx.now))} · '
        f"config <code>{esc(config_path)}</code> · "
        f'<a href="{esc(ctx.base)}/status?{esc(query)}">reset filters</a></div>'
        f"{banner}{problem_list}<h2>Accounts</h2>{table}"
        f"<h2>Daily activity (rows written to Marketo, last 14 days, UTC)</h2>{charts}"
        f"<h2>Needs attention (skipped and failed rows)</h2>{failures}"
        "</body></html>"
    )
