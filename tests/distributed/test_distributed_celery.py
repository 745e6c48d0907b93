"""The distributed deployment, natively: CeleryExecutor + PostgreSQL + Redis, two workers, one killed mid-run.

Topology (as ``docker-compose.yaml``): api-server, scheduler, dag-processor, triggerer and two Celery workers
(concurrency 2 each) as processes; Airflow's metadata DB and the provider's state DB on the machine's
PostgreSQL; Redis as the broker, PostgreSQL as the Celery result backend; one Fernet key for all.

Two FreshBooks accounts (two emulators with a few hundred seeded records each) write into one Marketo
emulator with its real limits (100 calls / 20 s, 10 in flight). Both DAGs are backfilled over 14 days at
once (4 active runs each) next to their scheduled run; during the backfill every FreshBooks access token is
expired (so the workers must refresh, and refresh tokens are single-use), then the Celery worker whose ``load``
task waits for the answer to an activity write that Marketo has already applied is killed with SIGKILL,
together with its task processes; the tokens expire again and a replacement worker starts (as Compose's
``restart: always`` would). Airflow fails the orphaned task by its missing heartbeat and retries it.

Then: every run succeeded; Marketo holds exactly the activities the pure sync rules derive from the
emulators' records for the runs' windows, none twice; its leads, companies and lists are exactly as planned;
every refresh was serialised (no two token calls overlapped, each spent the refresh token the previous one
issued, none was refused); Marketo's limits held across all worker processes. The figures are printed at the
end of the pytest output.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from distributed_expected import (
    expected_activities,
    expected_leads_and_companies,
    field_mismatches,
    marketo_activities,
)
from distributed_stack import (
    FIGURES_FILE,
    FIGURES_KEY,
    AnswerGate,
    DistributedStack,
    TokenTimer,
    airflow_postgres_celery_unavailable,
    overlapping,
    owner_of_port,
    pg_url,
    postgres_unavailable,
    redis_database,
    redis_unavailable,
    throwaway_databases,
)

from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.sync.window import Window
from airflow_provider_fbmkto.testing import FreshBooksEmulator, MarketoEmulator
from airflow_provider_fbmkto.testing.freshbooks.seed import FREE_MAIL_DOMAINS
from airflow_provider_fbmkto.testing.freshbooks.seed import seed as seed_records

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
ARTIFACTS = FIGURES_FILE.parent
ACCOUNTS = ("acme", "globex")
DAG_IDS = tuple(f"fbmkto_sync__{a}" for a in ACCOUNTS)
PAID, OVERDUE = 1001, 1002
BACKFILL_DAYS = 14
#: Whole test budget; the stages below take their share of it. A guard against a hang, not a speed target: on a
#: starved 2-core machine (moved-date passes beside it) the 30 runs and their retries once finished just after 480 s.
BUDGET_SECONDS = 720

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(BUDGET_SECONDS + 90)]

CONFIG = """\
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  timezone: UTC
  start_date: "2025-01-01"
  retries: 3
  pool: fbmkto_marketo
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    segments: {{paid_list_id: {paid}, overdue_list_id: {overdue}}}
  - name: globex
    freshbooks_conn_id: freshbooks_globex
    matching:
      rules: [{{domain: {globex_domain}, company: Globex Holdings}}]
"""


@pytest.fixture(scope="module")
def services() -> None:
    for reason in (postgres_unavailable(), redis_unavailable(), airflow_postgres_celery_unavailable()):
        if reason:
            pytest.skip(f"distributed e2e needs PostgreSQL, Redis, the Celery provider and asyncpg: {reason}")


def seeded(fb: FreshBooksEmulator, name: str) -> dict[str, int]:
    """A few hundred records over the last month, so the 14-day backfill has plenty to write."""
    return seed_records(fb.model, f"distributed-{name}", clients=40, invoices_per_client=4, months=1)


def separate_globex(fb: FreshBooksEmulator) -> str:
    """Make globex's e-mails disjoint from acme's (one Marketo, so shared leads would be ambiguous).

    Company domains get a ``globex-`` prefix; free-mail addresses a ``globex.`` local prefix. Returns one of
    its company domains, for the account's matching rule.
    """
    with fb.model.lock:
        for client in fb.model.clients.values():
            local, _, domain = client.email.partition("@")
            client.email = f"globex.{local}@{domain}" if domain in FREE_MAIL_DOMAINS else f"{local}@globex-{domain}"
        domains = sorted(
            {c.email.partition("@")[2] for c in fb.model.clients.values() if c.vis_state == 0} - set(FREE_MAIL_DOMAINS)
        )
    return domains[0]


def fbmkto(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "airflow_provider_fbmkto.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, f"fbmkto {args[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def mean_seconds(rows: list[dict[str, Any]], start: str, end: str) -> float:
    total = sum((r[end] - r[start]).total_seconds() for r in rows)
    return round(float(total) / max(1, len(rows)), 1)


def marketo_codes(mkto: MarketoEmulator) -> Counter[str]:
    return Counter(code for call in mkto.rest_calls() for code in call.codes)


def first_attempt_log(logs: Path, key: tuple[str, str, str]) -> list[str]:
    dag_id, run_id, task_id = key
    path = logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}" / "attempt=1.log"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def first_attempt_log_tail(logs: Path, key: tuple[str, str, str], lines: int = 15) -> list[str]:
    """The end of a task instance's first attempt log: why it needed a retry, in CI's output."""
    return first_attempt_log(logs, key)[-lines:] or [f"no first-attempt log for {' '.join(key)}"]


def task_errors(log_lines: list[str]) -> list[str]:
    """The error events the task itself logged (Airflow 3 task logs are JSON lines): what it raised.

    The supervisor's own lines (e.g. "the server says this task should not be running any more" after a
    heartbeat timeout) are not the task's errors."""
    errors = []
    for line in log_lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or str(event.get("logger", "")).startswith("supervisor"):
            continue
        if str(event.get("level", "")).lower() in ("error", "critical"):
            errors.append(str(event.get("event", ""))[:300])
    return errors


def test_celery_backfill_of_two_accounts_survives_a_killed_worker(
    services: None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    began = time.monotonic()
    deadline = began + BUDGET_SECONDS
    figures: dict[str, Any] = {}
    request.config.stash[FIGURES_KEY] = figures
    shutil.rmtree(ARTIFACTS, ignore_errors=True)

    def left() -> float:
        return max(5.0, deadline - time.monotonic())

    with ExitStack() as cleanup:
        meta_db, state_db = cleanup.enter_context(throwaway_databases("fbmkto_af", "fbmkto_state"))
        redis_db = cleanup.enter_context(redis_database())

        fb = {"acme": FreshBooksEmulator(account_id="ACME01"), "globex": FreshBooksEmulator(account_id="GLOBEX1")}
        seeds = {name: seeded(emu, name) for name, emu in fb.items()}
        globex_domain = separate_globex(fb["globex"])
        timers = {}
        for name, emu in fb.items():
            timers[name] = TokenTimer(emu.app)
            emu._server.app = timers[name]  # every request passes the timer; the emulator is unchanged
            cleanup.enter_context(emu)
        mkto = MarketoEmulator(latency=0.05, lists={PAID: "FB Paid", OVERDUE: "FB Overdue"})
        gate = AnswerGate(mkto.app, "/rest/v1/activities/external.json")
        mkto._server.app = gate  # activity writes answer late until the kill, so one answer dies with the worker
        cleanup.enter_context(mkto)

        config = tmp_path / "fbmkto_accounts.yaml"
        config.write_text(CONFIG.format(paid=PAID, overdue=OVERDUE, globex_domain=globex_domain))
        accounts = {a.name: a for a in load_config(config).accounts}
        key = Fernet.generate_key().decode()
        env = {
            "AIRFLOW__CORE__FERNET_KEY": key,  # the state DB's key too (no fernet_key extra, no FBMKTO_FERNET_KEY)
            "AIRFLOW_CONN_FBMKTO_STATE": pg_url(state_db, "postgresql"),
            "AIRFLOW_CONN_FRESHBOOKS_ACME": fb["acme"].conn_json(),
            "AIRFLOW_CONN_FRESHBOOKS_GLOBEX": fb["globex"].conn_json(),
            "AIRFLOW_CONN_MARKETO_DEFAULT": mkto.conn_json(),
            "FBMKTO_CONFIG": str(config),
            "FBMKTO_RETRY_DELAY_SECONDS": "2",
        }
        af = DistributedStack(tmp_path / "airflow", DAGS, metadata_db=meta_db, redis_db=redis_db, env=env)
        cleanup.callback(af.stop)
        figures["topology"] = (
            f"CeleryExecutor, metadata DB {meta_db}, state DB {state_db} (PostgreSQL), broker redis db {redis_db}, "
            f"queue {af.queue}; api-server, scheduler, dag-processor, triggerer, 2 Celery workers x concurrency 2 "
            "(the killed one replaced)"
        )
        figures["seeded records"] = seeds
        try:
            # -- set-up, as docs/deploy.md tells a user: metadata DB and pool; Marketo types and one FreshBooks
            #    authorization per account (these need only the state DB, so they run meanwhile)
            def metadata_db() -> None:
                af.migrate()
                af.airflow("pools", "set", "fbmkto_marketo", "8", "Marketo calls (instance limit 10)")

            with ThreadPoolExecutor(4) as pool:
                jobs = [
                    pool.submit(metadata_db),
                    pool.submit(fbmkto, af.env, "setup-marketo", "--conn-id", "marketo_default"),
                    *(
                        pool.submit(fbmkto, af.env, "authorize", "--conn-id", f"freshbooks_{name}", "--code", code)
                        for name, code in ((n, emu.issue_code()) for n, emu in fb.items())
                    ),
                ]
                for job in jobs:
                    job.result()
            figures["set-up seconds"] = round(time.monotonic() - began)

            # -- the stack, both DAGs, both backfills
            af.start_all(workers=2, concurrency=2)
            af.wait_until("both DAGs parsed", lambda: set(DAG_IDS) <= af.metadata.parsed_dags(), timeout=180)
            today = datetime.now(timezone.utc).date()
            first, last = today - timedelta(days=BACKFILL_DAYS + 1), today - timedelta(days=2)
            with ThreadPoolExecutor(2) as pool:
                for job in [
                    pool.submit(af.backfill, dag_id, str(first), str(last), "--max-active-runs", "4")
                    for dag_id in DAG_IDS
                ]:
                    job.result()
            backfill_started = time.monotonic()

            def tis() -> list[dict[str, Any]]:
                return af.metadata.task_instances(DAG_IDS)

            # -- every access token dies once each account has pulled once: the next pulls must refresh
            af.wait_until(
                "an extract of each account succeeded",
                lambda: (
                    {t["dag_id"] for t in tis() if t["task_id"] == "extract" and t["state"] == "success"}
                    >= set(DAG_IDS)
                ),
                timeout=left(),
            )
            for emu in fb.values():
                emu.expire_access_tokens()
            expired_at = time.monotonic()

            # -- SIGKILL the worker whose `load` waits for Marketo's answer to an activity write Marketo has
            #    applied (with its task processes): the retry must find those activities, not send them again.
            # No wait for some runs to finish first: a fact is sent by the first run that sees it inside the
            # account's scope, so when the scheduled run is first the first backfill run sends the whole gap and
            # the later runs write no activity at all.
            def victim() -> tuple[str, int] | None:
                for port in gate.waiting_ports():
                    pid = owner_of_port(af, port)
                    worker = af.worker_of(pid) if pid else None
                    if pid and worker:
                        return worker, pid
                return None

            worker, task_pid = af.wait_until(
                "a load waiting for Marketo mid-backfill", victim, timeout=left(), interval=0.2
            )
            at_kill = tis()
            on_worker = [
                (t["dag_id"], t["run_id"], t["task_id"])
                for t in at_kill
                if t["state"] == "running" and t["pid"] and af.worker_of(int(t["pid"])) == worker
            ]
            target = [(t["dag_id"], t["run_id"], t["task_id"]) for t in at_kill if t["pid"] == task_pid]
            queued = [(t["dag_id"], t["run_id"], t["task_id"]) for t in at_kill if t["state"] == "queued"]
            killed_pids = af.kill_tree(worker)
            killed_at = time.monotonic()
            gate.hold = 0  # Marketo answers promptly again
            # The tokens die once more (refreshes now race with the retries), and the dead worker is replaced
            # as Compose's `restart: always` would, under another Celery name.
            for emu in fb.values():
                emu.expire_access_tokens()
            af.start_worker("worker3", concurrency=2)
            figures["killed"] = {
                "worker": worker,
                "processes": len(killed_pids),
                "seconds after backfill start": round(killed_at - backfill_started),
                "task instances running on it": on_worker,
                "task waiting for the activity write's answer": target,
            }

            # -- everything finishes on the surviving worker and the replacement
            def finished() -> list[dict[str, Any]] | None:
                runs = af.metadata.runs(DAG_IDS)
                per_dag = Counter(r["dag_id"] for r in runs)
                done = all(r["state"] in ("success", "failed") for r in runs)
                return runs if done and all(per_dag[d] >= BACKFILL_DAYS + 1 for d in DAG_IDS) else None

            runs = af.wait_until("every run finished", finished, timeout=left(), interval=2)
            figures["backfill seconds"] = round(time.monotonic() - backfill_started)
            final = tis()
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            FIGURES_FILE.write_text(json.dumps(figures, default=str, indent=2))
            for src, dst in ((af.logs, "stack-logs"), (af.home / "logs", "task-logs")):
                if src.exists():
                    shutil.copytree(src, ARTIFACTS / dst, dirs_exist_ok=True)
            raise

        # ================================= figures and assertions =================================
        as_of = datetime.now(timezone.utc)
        states = Counter((r["dag_id"], r["run_type"], r["state"]) for r in runs)
        figures["runs"] = {f"{d} {t} {s}": n for (d, t, s), n in sorted(states.items())}
        timed = [t for t in final if t["queued_dttm"] and t["start_date"] and t["end_date"]]
        retried = {(t["dag_id"], t["run_id"], t["task_id"]): t["try_number"] for t in final if t["try_number"] > 1}
        figures["retried task instances"] = {" ".join(k): n for k, n in retried.items()}
        # A retry is explained when its first try died with the worker: running or queued on it at the kill, or
        # (Airflow's own record of the try) its task process was one of the processes killed.
        first_tries = af.metadata.first_tries(DAG_IDS)
        died = {(t["dag_id"], t["run_id"], t["task_id"]) for t in first_tries if t["pid"] in killed_pids}
        # A first try the scheduler ended from outside (its heartbeat went stale on a starved machine) logged no
        # error of its own; a 606, a refresh race or any other failure of the sync logs the error it raised.
        first_logs = {k: first_attempt_log(af.home / "logs", k) for k in retried}
        ended_from_outside = {k for k, lines in first_logs.items() if lines and not task_errors(lines)}
        figures["retries ended from outside (no error in the first try's log)"] = sorted(
            " ".join(k) for k in ended_from_outside - set(on_worker) - set(queued) - died
        )
        unexplained = set(retried) - set(on_worker) - set(queued) - died - ended_from_outside
        figures["first tries of retried task instances"] = first_tries
        figures["unexplained retries"] = {
            " ".join(k): task_errors(first_logs[k]) + first_attempt_log_tail(af.home / "logs", k)
            for k in sorted(unexplained)
        }

        got = marketo_activities(mkto)
        windows: dict[str, list[Window]] = {}
        expected: set[tuple[Any, ...]] = set()
        for name, dag_id in zip(ACCOUNTS, DAG_IDS, strict=True):
            windows[name] = [
                Window(r["data_interval_start"], r["data_interval_end"]) for r in runs if r["dag_id"] == dag_id
            ]
            expected |= expected_activities(fb[name], accounts[name], windows[name])
        duplicates = sum(n - 1 for n in got.values() if n > 1)
        codes = marketo_codes(mkto)
        refreshes = {
            name: [c for c in timer.calls if c.grant_type == "refresh_token"] for name, timer in timers.items()
        }
        figures.update(
            {
                "activities": {"in Marketo": sum(got.values()), "expected": len(expected)},
                "duplicates": duplicates,
                "leads": len(mkto.leads()),
                "companies": len(mkto.companies()),
                "max in-flight Marketo calls": mkto.max_in_flight,
                "Marketo REST calls": len(mkto.rest_calls()),
                "Marketo error codes answered": dict(codes),
                "FreshBooks token calls": {n: Counter(c.status for c in t.calls) for n, t in timers.items()},
                "refresh calls": {n: len(r) for n, r in refreshes.items()},
                "refresh calls after expiry": {
                    n: sum(1 for c in r if c.start >= expired_at) for n, r in refreshes.items()
                },
                "refresh calls after the kill (2nd expiry)": {
                    n: sum(1 for c in r if c.start >= killed_at) for n, r in refreshes.items()
                },
                "activity read-back calls": sum(1 for c in mkto.rest_calls() if c.path == "/rest/v1/activities.json"),
                "Marketo calls by endpoint": dict(
                    Counter(f"{c.effective_method or c.method} {c.path}" for c in mkto.rest_calls()).most_common()
                ),
                "task pools": dict(Counter(f"{t['task_id']}:{t['pool']}" for t in final)),
                "mean task seconds (queued to start, running)": [
                    mean_seconds(timed, "queued_dttm", "start_date"),
                    mean_seconds(timed, "start_date", "end_date"),
                ],
                "total seconds": round(time.monotonic() - began),
            }
        )
        FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
        FIGURES_FILE.write_text(json.dumps(figures, default=str, indent=2))

        # 1. Airflow: every run succeeded: 14 backfill runs and the scheduled one per account.
        assert all(r["state"] == "success" for r in runs), figures["runs"]
        for dag_id in DAG_IDS:
            kinds = Counter(r["run_type"] for r in runs if r["dag_id"] == dag_id)
            assert kinds["backfill"] == BACKFILL_DAYS, (dag_id, kinds)
        # The killed tasks were retried (heartbeat timeout) and succeeded; nothing else needed a retry, so no
        # 606 or refresh race ever reached a task as a failure.
        final_by_key = {(t["dag_id"], t["run_id"], t["task_id"]): t for t in final}
        assert on_worker, "the killed worker ran no task"
        for key_ in on_worker:
            assert final_by_key[key_]["state"] == "success", key_
            assert final_by_key[key_]["try_number"] >= 2, key_
        assert not unexplained, figures["unexplained retries"]
        # The killed load had written activities whose answer it never got; its retry read them back.
        assert [task for _, _, task in target] == ["load"], target
        assert figures["activity read-back calls"] >= 1, "the retried load did not resolve its in-flight rows"

        # 2. Marketo state exact: the activities the sync rules imply for the runs' windows, once each.
        assert duplicates == 0, [k for k, n in got.items() if n > 1][:5]
        assert set(got) == expected, {
            "missing": sorted(expected - set(got))[:5],
            "unexpected": sorted(set(got) - expected)[:5],
        }
        assert len(expected) > 200, "too little data to mean anything"
        # Leads, companies and lists as planned from all records (the first runs cover every client).
        if as_of.date() == today:  # summaries are "as of today": compare only if the day did not change
            leads = {str(lead["email"]).lower(): lead for lead in mkto.leads()}
            companies = {str(c["externalCompanyId"]): c for c in mkto.companies()}
            want_leads: dict[str, dict[str, Any]] = {}
            want_companies: dict[str, dict[str, Any]] = {}
            for name in ACCOUNTS:
                lead_fields, company_fields = expected_leads_and_companies(fb[name], accounts[name], as_of)
                want_leads |= lead_fields
                want_companies |= company_fields
            assert field_mismatches(want_leads, leads) == []
            assert field_mismatches(want_companies, companies) == []
            acme = {
                email: leads[email]["id"]
                for email in expected_leads_and_companies(fb["acme"], accounts["acme"], as_of)[0]
            }
            for list_id, status in ((PAID, "paid"), (OVERDUE, "overdue")):
                members = {lid for email, lid in acme.items() if want_leads[email]["fbPaymentStatus"] == status}
                assert set(mkto.list_members(list_id)) == members, status

        # 3. FreshBooks: refresh tokens spent strictly one after the other, each the one the previous call issued.
        for name, timer in timers.items():
            calls = sorted(timer.calls, key=lambda c: c.start)
            assert [c.status for c in calls if c.status != 200] == [], (name, figures["FreshBooks token calls"])
            assert overlapping(calls) == [], f"{name}: token calls overlapped"
            assert calls[0].grant_type == "authorization_code", name
            for prev, call in itertools.pairwise(calls):
                assert call.grant_type == "refresh_token", name
                assert call.sent_refresh_token == prev.new_refresh_token, f"{name}: a refresh spent a stale token"
            assert figures["refresh calls after expiry"][name] >= 1, f"{name}: no refresh after the tokens expired"

        # 4. Marketo limits held across all processes.
        assert mkto.max_in_flight <= 10
        assert codes["615"] == 0, codes
        assert codes["607"] == 0, codes
