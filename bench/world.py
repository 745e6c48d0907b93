"""The benchmark's world: both emulators (in this process), the seeded FreshBooks account, config, connections.

The emulators run here; the tasks run in the worker's processes (:mod:`bench.worker`), so a task's peak RSS
is the task's own and the two sides do not share one interpreter lock. Marketo's limits are the real ones
(100 calls per window, 10 in flight) with the window shortened by the time scale: ``window_seconds`` =
20 x ``time_scale`` on the emulator and on the connection, so the hook's limiter (and every wait of the
hook) matches. Emulated seconds = real seconds / ``time_scale``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from airflow_provider_fbmkto.testing import FreshBooksEmulator, MarketoEmulator
from airflow_provider_fbmkto.testing.freshbooks.seed import seed as seed_freshbooks

ACCOUNT = "bench"
FB_CONN, MK_CONN = "freshbooks_bench", "marketo_bench"
PAID_LIST, OVERDUE_LIST = 1001, 1002
TZ = ZoneInfo("America/New_York")
#: FreshBooks records per client the generated seed gives (1 client + ~4 invoices + ~3 payments).
RECORDS_PER_CLIENT = 8.06
#: Marketo's real limits; the window is scaled.
RATE_LIMIT, WINDOW_SECONDS, MAX_CONCURRENCY = 100, 20.0, 10
#: Marketo asks for bulk export status polls at most once a minute (scaled like the window).
EXPORT_POLL_SECONDS = 60.0

CONFIG = """\
accounts:
  - name: {account}
    freshbooks_conn_id: {fb}
    marketo_conn_id: {mk}
    schedule: "@daily"
    timezone: {tz}
    start_date: "{start}"
    retries: 0
    segments: {{paid_list_id: {paid}, overdue_list_id: {overdue}}}
"""


def parse_scale(text: str) -> int:
    """``100k``, ``1m``, ``2500`` → number of FreshBooks records."""
    raw = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(raw[-1:], 1)
    number = raw[:-1] if factor > 1 else raw
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise SystemExit(f"--scale {text!r}: give a number of records such as 100k, 1m or 5000") from None
    if value < 100:
        raise SystemExit(f"--scale {text!r}: at least 100 records")
    return value


@dataclass(frozen=True)
class Settings:
    """What a benchmark run was asked for.

    :param records: FreshBooks records to seed (clients + invoices + payments), approximately.
    :param time_scale: Marketo's 20 s window becomes ``20 x time_scale`` real seconds.
    :param months: history the seed spreads invoices over.
    :param backfill_days: daily runs of the backfill scenario.
    :param steady_fraction: share of clients, invoices and payments changed before the steady-state run.
    :param seed: the generator's seed (same seed and sizes → same data).
    :param calls_per_window: the Marketo connection's ``calls_per_window`` (None: the hook's default).
    :param payment_touches_invoice: the FreshBooks emulator's switch of that name (undocumented by FreshBooks).
    """

    records: int = 100_000
    time_scale: float = 0.25
    months: int = 24
    backfill_days: int = 7
    steady_fraction: float = 0.01
    seed: str = "bench"
    calls_per_window: int | None = None
    payment_touches_invoice: bool = True

    @property
    def clients(self) -> int:
        return max(4, round(self.records / RECORDS_PER_CLIENT))

    @property
    def window_seconds(self) -> float:
        return WINDOW_SECONDS * self.time_scale


def _eastern_today() -> date:
    return datetime.now(timezone.utc).astimezone(TZ).date()


@dataclass
class World:
    """Emulators, a worker, a state DB and an Airflow home; :meth:`fresh_state` starts a new sync history."""

    settings: Settings
    workdir: Path
    fb: FreshBooksEmulator
    mk: MarketoEmulator
    seeded: dict[str, int]
    today: date
    history_start: date
    env: dict[str, str] = field(default_factory=dict)
    worker: Worker | None = None
    generation: int = 0
    settle_activities: Callable[[], None] = lambda: None

    @property
    def config_path(self) -> Path:
        return self.workdir / "fbmkto_accounts.yaml"

    @property
    def home(self) -> Path:
        return self.workdir / f"airflow-{self.generation}"

    def fresh_state(self) -> None:
        """A new Airflow home (state DB, staging), a reset Marketo, a new worker, set-up and authorization."""
        if self.worker is not None:
            self.worker.close()
        self.generation += 1
        self.mk.reset()
        index_marketo_lookups(self.mk)
        self.settle_activities = defer_activity_ordering(self.mk)
        self.home.mkdir(parents=True, exist_ok=True)
        self.env["AIRFLOW_HOME"] = str(self.home)
        self.worker = Worker(self.env, self.workdir / f"worker-{self.generation}.log")
        self.worker.cli(["setup-marketo", "--conn-id", MK_CONN])
        self.worker.cli(["authorize", "--conn-id", FB_CONN, "--code", self.fb.issue_code()])

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.fb.stop()
        self.mk.stop()

    # -- the steady-state day ------------------------------------------------------------------------

    def change_fraction(self, fraction: float, day: date) -> dict[str, Any]:
        """Change about ``fraction`` of clients, invoices and payments, as a day of business does.

        Clients: a renamed contact. Invoices: half new ones dated ``day``, half edited open ones (amount up).
        Payments: new ones dated ``day`` paying open invoices in full. Returns what changed.
        """
        rng = random.Random(f"bench-steady:{self.settings.seed}:{self.generation}")
        model = self.fb.model
        with model.lock:
            clients = sorted(i for i, c in model.clients.items() if c.vis_state == 0)
            invoices = sorted(model.invoices)
            open_invoices = sorted(
                i
                for i, inv in model.invoices.items()
                if inv.vis_state == 0 and inv.base_status != 1 and inv.outstanding > 0
            )
            n_payments = len(model.payments)
        n_clients = max(1, round(len(clients) * fraction))
        n_invoices = max(2, round(len(invoices) * fraction))
        n_pay = max(1, round(n_payments * fraction))
        touched: set[int] = set()
        for cid in rng.sample(clients, min(n_clients, len(clients))):
            rec = self.fb.update("client", cid, lname=f"{model.clients[cid].lname}-Renamed")
            touched.add(int(rec["userid"]))
        new_invoices = 0
        for cid in rng.sample(clients, min(n_invoices // 2, len(clients))):
            amount = Decimal(rng.randint(5000, 500000)) / 100
            self.fb.add("invoice", customerid=cid, create_date=day.isoformat(), amount=str(amount))
            touched.add(cid)
            new_invoices += 1
        picks = rng.sample(open_invoices, min(n_invoices - n_invoices // 2 + n_pay, len(open_invoices)))
        edits, pays = picks[: n_invoices - n_invoices // 2], picks[n_invoices - n_invoices // 2 :]
        for iid in edits:
            inv = model.invoices[iid]
            self.fb.update("invoice", iid, amount=str(inv.amount + Decimal("10.00")))
            touched.add(inv.customerid)
        for iid in pays:
            inv = model.invoices[iid]
            self.fb.add("payment", invoiceid=iid, amount=str(inv.outstanding), date=day.isoformat(), type="ACH")
            touched.add(inv.customerid)
        return {
            "clients_renamed": n_clients,
            "invoices_new": new_invoices,
            "invoices_edited": len(edits),
            "payments_new": len(pays),
            "clients_affected": len(touched),
        }


def index_marketo_lookups(mk: MarketoEmulator) -> None:
    """Give the Marketo emulator's lead and company stores an index for lookups by field (same answers).

    The emulator finds a lead by e-mail (a company by ``externalCompanyId``) by scanning every record, so an
    upsert of n records into a store of n is O(n²): hours at 1M records, and the emulator (not the code under
    test) would be what the benchmark measures. This keeps ``find``'s results and order (ascending id) and
    re-indexes a record after each ``upsert`` -- the store's only mutation besides ``reset``.
    """
    for store in (mk.model.leads, mk.model.companies):
        if getattr(store, "_bench_indexed", False):
            continue
        _FieldIndex(store).install()


def defer_activity_ordering(mk: MarketoEmulator) -> Callable[[], None]:
    """Let the Marketo emulator append activities and put them in date order when they are next read.

    The emulator keeps its activities in ``(activityDate, id)`` order by inserting each one into a Python list:
    O(n) per activity, so writing a history of 1M activities (dated in the past, i.e. in the middle of the
    list) costs the emulator, under its lock, more than the calls' own pacing. This appends instead and
    sorts before a read of the activity pages (or when the returned ``settle`` is called, which the harness
    does after each run, before anyone looks at ``mk.activities()``).
    """
    store = mk.model.activities
    settle: Callable[[], None] | None = getattr(store, "_bench_settle", None)
    if settle is not None:
        return settle
    pending: list[Any] = []
    page, reset = store.page, store.reset

    def appended(activity: Any) -> Any:
        pending.append(activity)
        return activity

    def settled() -> None:
        with mk.model.lock:
            if pending:
                ordered = sorted([*store.activities, *pending], key=lambda a: (a.activity_date, a.id))
                pending.clear()
                store.activities[:] = ordered
                store._keys[:] = [(a.activity_date, a.id) for a in ordered]

    def paged(*args: Any, **kwargs: Any) -> Any:
        settled()
        return page(*args, **kwargs)

    def cleared() -> None:
        reset()
        pending.clear()

    for name, replacement in (("_insert", appended), ("page", paged), ("reset", cleared), ("_bench_settle", settled)):
        setattr(store, name, replacement)
    return settled


class _FieldIndex:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.find, self.upsert, self.reset = store.find, store.upsert, store.reset
        #: field → (lower-cased value → ids, id → lower-cased value)
        self.by_field: dict[str, tuple[dict[str, set[int]], dict[int, str]]] = {}

    def install(self) -> None:
        self.store.find, self.store.upsert, self.store.reset = self.indexed_find, self.indexed_upsert, self.cleared
        self.store._bench_indexed = True

    def _field(self, name: str) -> tuple[dict[str, set[int]], dict[int, str]]:
        found = self.by_field.get(name)
        if found is None:
            buckets: dict[str, set[int]] = {}
            of: dict[int, str] = {}
            for entity in self.store.items.values():
                value = str(entity.values.get(name, "")).lower()
                buckets.setdefault(value, set()).add(entity.id)
                of[entity.id] = value
            found = self.by_field[name] = (buckets, of)
        return found

    def indexed_find(self, key: str, value: Any) -> list[Any]:
        if key == "id":
            return list(self.find(key, value))
        buckets, _ = self._field(key)
        items = self.store.items
        return [items[i] for i in sorted(buckets.get(str(value).lower(), ())) if i in items]

    def indexed_upsert(self, record: Any, *, action: str, key: str, **options: Any) -> Any:
        result = self.upsert(record, action=action, key=key, **options)  # options: partition, refusals
        entity = result[1]
        if entity is not None:
            for name, (buckets, of) in self.by_field.items():
                value, old = str(entity.values.get(name, "")).lower(), of.get(entity.id)
                if value != old:
                    if old is not None:
                        buckets.get(old, set()).discard(entity.id)
                    buckets.setdefault(value, set()).add(entity.id)
                    of[entity.id] = value
        return result

    def cleared(self) -> None:
        self.reset()
        self.by_field.clear()


class Worker:
    """The task process server (:mod:`bench.worker`) as a child process; its logs go to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: TextIO = log_path.open("a")
        root = str(Path(__file__).resolve().parents[1])
        full_env = {
            **os.environ,
            **env,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=full_env,
            text=True,
            bufsize=1,
        )
        hello = self._read()
        if not hello.get("ready"):
            raise RuntimeError(f"bench worker did not start; see {log_path}")
        self.idle_rss_kb = int(hello["rss_kb"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench worker exited (code {self.proc.poll()}); see {self.log_path}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def send(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send one command; return the answer (raises with the task's traceback if it failed)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd, default=str) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(
                f"bench {cmd.get('op')} {cmd.get('task') or cmd.get('args') or ''} failed: {answer['error']}\n"
                f"{answer.get('traceback', '')}(worker log: {self.log_path})"
            )
        return answer

    def cli(self, args: list[str]) -> dict[str, Any]:
        answer = self.send({"op": "cli", "args": args})
        if answer["result"]["exit_code"] != 0:
            raise RuntimeError(f"fbmkto {' '.join(args[:1])} failed: {answer['result']['output']}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def build_world(settings: Settings, workdir: Path | None = None) -> World:
    """Start both emulators, seed FreshBooks (history ending yesterday), write config and connections."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="fbmkto-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    today = _eastern_today()
    fb = FreshBooksEmulator(payment_touches_invoice=settings.payment_touches_invoice)
    seeded = seed_freshbooks(
        fb.model,
        settings.seed,
        clients=settings.clients,
        invoices_per_client=4,
        months=settings.months,
        as_of=today - timedelta(days=1),
    )
    ts = settings.time_scale
    mk = MarketoEmulator(
        rate_limit=RATE_LIMIT,
        window_seconds=settings.window_seconds,
        max_concurrency=MAX_CONCURRENCY,
        bulk_min_poll_seconds=EXPORT_POLL_SECONDS * ts,
        bulk_step_seconds=max(0.2, 5.0 * ts),
        lists={PAID_LIST: "FreshBooks: paid", OVERDUE_LIST: "FreshBooks: overdue"},
    )
    fb.start()
    mk.start()
    history_start = min(r.create_date for r in fb.model.invoices.values()) if fb.model.invoices else today
    history_start = min(history_start, min((c.created.date() for c in fb.model.clients.values()), default=today))
    world = World(settings, workdir, fb, mk, seeded, today, history_start - timedelta(days=2))
    world.config_path.write_text(
        CONFIG.format(
            account=ACCOUNT,
            fb=FB_CONN,
            mk=MK_CONN,
            tz=TZ.key,
            start=world.history_start.isoformat(),
            paid=PAID_LIST,
            overdue=OVERDUE_LIST,
        )
    )
    world.env.update(
        {
            "FBMKTO_FERNET_KEY": _fernet_key(),
            f"AIRFLOW_CONN_{FB_CONN.upper()}": fb.conn_json(),
            f"AIRFLOW_CONN_{MK_CONN.upper()}": mk.conn_json(
                **({"calls_per_window": settings.calls_per_window} if settings.calls_per_window else {})
            ),
            "FBMKTO_CONFIG": str(world.config_path),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    return world


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
