"""Reliability matrix: real DAG runs against both emulators, counting what Marketo got against what it should.

Reuses ``tests/e2e/conftest.py``'s :class:`World` (one Airflow home per test module, a fresh state DB and fresh
emulators per test). Each row's expectation is computed here, by hand, from the records the test created (a
FreshBooks date is the instant its day starts in the account's zone, worked out with ``zoneinfo``), never from
the code under test. Every row test writes its observed figures to ``test-artifacts/reliability.json``;
``render_matrix.py`` turns that file into ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import REPO, World, airflow_home, make_world  # noqa: F401 - airflow_home is a fixture

ARTIFACT = REPO / "test-artifacts" / "reliability.json"
UTC = timezone.utc
ACTIVITY_WRITES = "/rest/v1/activities/external.json"
SENT, PAID, OVERDUE = "fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue"


# -- worlds -----------------------------------------------------------------------------------------------------


def set_conn(w: World, name: str, **extra: Any) -> None:
    """Add or change extras (and ``password=``) of connection ``name`` for the next DAG runs and in-process."""
    var = f"AIRFLOW_CONN_{name.upper()}"
    conn = json.loads(w.env[var])
    if "password" in extra:
        conn["password"] = extra.pop("password")
    conn.setdefault("extra", {}).update(extra)
    w.env[var] = os.environ[var] = json.dumps(conn)


@contextlib.contextmanager
def open_world(
    home: Path,
    tmp_path: Path,
    config: str | None = None,
    *,
    marketo: dict[str, Any] | None = None,
    setup: bool = True,
    authorize: bool = True,
) -> Iterator[World]:
    """``make_world`` as a context manager, with Marketo provisioned and FreshBooks authorized by default."""
    worlds = make_world(home, tmp_path, config, marketo=marketo)
    w = next(worlds)
    try:
        w.env["FBMKTO_RETRY_DELAY_SECONDS"] = "1"
        if setup:
            assert w.cli("setup-marketo", "--conn-id", "marketo_default") == 0
        if authorize:
            assert w.cli("authorize", "--conn-id", "freshbooks_acme", "--code", w.fb.issue_code()) == 0
        yield w
    finally:
        worlds.close()


def output(proc: Any) -> str:
    return str(proc.stdout) + str(proc.stderr)


def failed(w: World, day_: date, conf: dict[str, Any] | None = None) -> str:
    """Run the DAG for ``day_`` expecting it to fail; its output."""
    proc = w.run(day_, conf)
    out = output(proc)
    assert proc.returncode != 0, out[-6000:]
    assert "state=failed" in out, out[-6000:]
    return out


# -- expectations -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Act:
    """One custom activity as a user would look it up in Marketo: lead e-mail, type, primary value, moment."""

    email: str
    type: str
    primary: str
    when: datetime


def midnight(day_: date | str, tz: str) -> datetime:
    """The UTC instant ``day_`` starts in ``tz`` (by zoneinfo, independently of the sync code)."""
    d = date.fromisoformat(day_) if isinstance(day_, str) else day_
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def sent(email: str, invoice: dict[str, Any], tz: str = "UTC") -> Act:
    return Act(email, SENT, str(invoice["invoice_number"]), midnight(invoice["create_date"], tz))


def paid(email: str, payment: dict[str, Any], tz: str = "UTC") -> Act:
    return Act(email, PAID, str(payment["id"]), midnight(payment["date"], tz))


def overdue(email: str, invoice: dict[str, Any], tz: str = "UTC") -> Act:
    due = date.fromisoformat(invoice["due_date"])
    return Act(email, OVERDUE, str(invoice["invoice_number"]), midnight(due + timedelta(days=1), tz))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def observed(w: World) -> Counter[Act]:
    """Every custom activity Marketo holds, as :class:`Act` (duplicates counted)."""
    names = w.type_names()
    emails = {lead["id"]: lead["email"] for lead in w.mkto.leads()}
    return Counter(
        Act(
            emails[a["leadId"]],
            names[a["activityTypeId"]],
            str(a.get("primaryAttributeValue")),
            _utc(a["activityDate"]),
        )
        for a in w.mkto.activities()
    )


@dataclass
class Tally:
    """What Marketo should hold at the end of a row: activities, lead e-mails, company external ids."""

    activities: set[Act] = field(default_factory=set)
    leads: set[str] = field(default_factory=set)
    companies: set[str] = field(default_factory=set)

    @property
    def records(self) -> int:
        return len(self.activities) + len(self.leads) + len(self.companies)

    def check(self, w: World) -> dict[str, int]:
        """Count against Marketo's state; assert nothing lost, nothing twice and nothing unexpected."""
        got = observed(w)
        leads = {lead["email"] for lead in w.mkto.leads()}
        companies = {c["externalCompanyId"] for c in w.mkto.companies()}
        lost = sorted(self.activities - set(got)) + sorted(self.leads - leads) + sorted(self.companies - companies)
        unexpected = sorted(set(got) - self.activities)
        figures = {
            "records": self.records,
            "written": len(set(got) & self.activities) + len(self.leads & leads) + len(self.companies & companies),
            "duplicates": w.duplicates(),
            "lost": len(lost),
            "unexpected": len(unexpected),
        }
        assert lost == [], f"lost: {lost}"
        assert unexpected == [], f"written but not expected: {unexpected}"
        assert figures["duplicates"] == 0, got.most_common(3)
        assert sum(got.values()) == len(self.activities)
        return figures


# -- observed faults --------------------------------------------------------------------------------------------


def marketo_answers(w: World, *codes: str) -> int:
    """Marketo calls answered with one of ``codes`` (Marketo error codes or HTTP statuses as text)."""
    wanted = set(codes)
    return sum(1 for c in w.mkto.calls if wanted & {*c.codes, str(c.status)})


def freshbooks_answers(w: World, *statuses: int) -> int:
    return sum(1 for c in list(w.fb.calls) if c.status in statuses)


def script_faults(w: World, path: str, plan: dict[int, str]) -> Callable[[], None]:
    """Answer the n-th call (1-based) to ``path`` with the emulator's fault ``plan[n]`` (FIFO queues cannot say
    "the second batch"). Returns a function that removes the script again."""
    take = w.mkto.faults.take
    seen = Counter[str]()

    def scripted(p: str) -> str | None:
        if p == path:
            seen[p] += 1
            kind = plan.get(seen[p])
            if kind is not None:
                return kind
        return take(p)

    w.mkto.faults.take = scripted  # type: ignore[method-assign]

    def restore() -> None:
        w.mkto.faults.take = take  # type: ignore[method-assign]

    return restore


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- the figures file -------------------------------------------------------------------------------------------


def _merge(section: str, key: str, value: dict[str, Any]) -> None:
    """Read-modify-write ``test-artifacts/reliability.json`` under a lock (safe with pytest-xdist)."""
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data: dict[str, Any] = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
        data.setdefault(section, {})[key] = value
        ARTIFACT.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@dataclass
class Figures:
    """Writes one test's observations into the figures file, tagged with the test's node id."""

    nodeid: str
    started: float = field(default_factory=time.monotonic)

    def row(
        self,
        key: str,
        *,
        row: str,
        faults: dict[str, int],
        runs: int,
        counts: dict[str, int],
        outcome: str,
        order: int,
    ) -> None:
        """A fault-matrix row: faults observed on the wire, DAG runs, records/written/duplicates/lost."""
        _merge(
            "matrix",
            key,
            {
                "row": row,
                "order": order,
                "test": self.nodeid,
                "faults": faults,
                "runs": runs,
                **counts,
                "outcome": outcome,
                "seconds": round(time.monotonic() - self.started, 1),
            },
        )

    def bad_input(self, key: str, *, order: int, input: str, caught_by: str, error: str, lost: int, kept: int) -> None:
        """A bad-input row: the observed error text, and how much already-written state survived."""
        _merge(
            "bad_input",
            key,
            {
                "input": input,
                "order": order,
                "caught_by": caught_by,
                "error": error,
                "kept": kept,
                "lost": lost,
                "test": self.nodeid,
            },
        )

    def secrets(self, places: dict[str, int], secrets: dict[str, int]) -> None:
        _merge("secrets", "scan", {"places": places, "secrets": secrets, "test": self.nodeid})

    def prop(self, key: str, *, claim: str, examples: int, **detail: int) -> None:
        _merge("properties", key, {"claim": claim, "examples": examples, "test": self.nodeid, **detail})


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    return Figures(request.node.nodeid)


@pytest.fixture(scope="session", autouse=True)
def _suite_time(request: pytest.FixtureRequest) -> Iterator[None]:
    """Wall time of a session that runs only this suite (per xdist worker), for the matrix's footer."""
    started = time.monotonic()
    yield
    items = request.session.items
    if items and all(i.nodeid.startswith("tests/reliability/") for i in items):
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        _merge("suite", worker, {"seconds": round(time.monotonic() - started, 1), "tests": len(items)})


def first_line(text: str, *needles: str) -> str:
    """The first line of ``text`` that contains every needle (for quoting an error in the matrix)."""
    for line in text.splitlines():
        if all(n in line for n in needles):
            return line.strip()
    raise AssertionError(f"no line with {needles!r} in:\n{text[-4000:]}")


def error_text(line: str) -> str:
    """The error message of a log/traceback line: from the exception class name on, without log prefixes."""
    for marker in ("Error: ", "Exhausted: ", "Required: ", "Problems: "):
        if marker in line:
            head, _, tail = line.partition(marker)
            name = head.split()[-1].rsplit(".", 1)[-1] if head.split() else ""
            return f"{name}{marker}{tail}".strip()
    return line
