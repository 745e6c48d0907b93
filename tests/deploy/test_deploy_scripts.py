"""The helper scripts docker-compose.yaml runs (deploy/*.py), exercised natively.

The emulator runner is started from the exact arguments in docker-compose.yaml; the demo set-up runs against
in-process emulators using the compose file's demo connections (hosts swapped for the emulators' loopback
URLs); the state DB initialisation runs against the PostgreSQL at 127.0.0.1:5432 when it is reachable.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from deploy_support import compose, deploy_module, service

from airflow_provider_fbmkto.sync.config import load_config
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator
from airflow_provider_fbmkto.testing.server import ThreadedServer
from tests.pg import PG, pg_unreachable_reason

# --- deploy/emulator.py ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fb-emulator", "mkto-emulator"])
def test_emulator_runner_accepts_the_compose_command_and_serves_the_emulator(name: str) -> None:
    emulator = deploy_module("emulator")
    args = emulator.build_parser().parse_args(service(name)["command"])
    assert args.host == "0.0.0.0"
    args.host = "127.0.0.1"  # same app, served on loopback for the test
    with ThreadedServer(emulator.build_app(args), host="127.0.0.1", port=0) as server:
        if args.api == "freshbooks":
            state = requests.get(f"{server.url}/_emulator", timeout=5).json()
            assert state["counts"]["clients"] > 0, "the demo seed should give the FreshBooks emulator data"
        else:
            lists = requests.get(f"{server.url}/_emulator/lists", timeout=5).json()["lists"]
            assert {(entry["id"], entry["name"]) for entry in lists} == {(1001, "FB Paid"), (1002, "FB Overdue")}


def test_emulator_runner_rejects_a_malformed_list() -> None:
    emulator = deploy_module("emulator")
    with pytest.raises(SystemExit):
        emulator.build_parser().parse_args(["marketo", "--port", "1", "--list", "paid"])


# --- deploy/demo_setup.py: the config ----------------------------------------------------------------------------


def test_demo_config_is_a_valid_accounts_config_wired_to_the_compose_file(tmp_path: Path) -> None:
    demo = deploy_module("demo_setup")
    path = tmp_path / "fbmkto_accounts.yaml"
    path.write_text(demo.demo_config(date(2025, 3, 1)), encoding="utf-8")
    (account,) = load_config(path).accounts
    assert account.dag_id == "fbmkto_sync__demo"
    assert account.start_date == date(2025, 3, 1)
    common = compose()["x-airflow-common"]["environment"]
    assert f"AIRFLOW_CONN_{account.freshbooks_conn_id.upper()}" in common
    assert f"AIRFLOW_CONN_{account.marketo_conn_id.upper()}" in common
    init_script = "\n".join(service("airflow-init")["command"])
    assert f"airflow pools set {account.pool} " in init_script
    lists = {int(a.split("=")[0]) for a in service("mkto-emulator")["command"] if re.match(r"^\d+=", a)}
    assert {account.segments.paid_list_id, account.segments.overdue_list_id} == lists


def test_write_config_writes_rewrites_its_own_and_keeps_the_users(tmp_path: Path) -> None:
    demo = deploy_module("demo_setup")
    path = tmp_path / "dags" / "fbmkto_accounts.yaml"
    assert demo.write_config(path, demo.demo_config(date(2025, 1, 1))) is True
    assert demo.write_config(path, demo.demo_config(date(2025, 2, 1))) is True  # its own file: rewritten
    assert '"2025-02-01"' in path.read_text(encoding="utf-8")

    users = "accounts:\n  - {name: acme, freshbooks_conn_id: freshbooks_acme, marketo_conn_id: m, "
    users += 'schedule: "@daily", start_date: "2025-01-01"}\n'
    path.write_text(users, encoding="utf-8")
    with pytest.raises(demo.DemoSetupError, match="has no valid account 'demo'"):
        demo.write_config(path, demo.demo_config(date(2025, 1, 1)))
    assert path.read_text(encoding="utf-8") == users

    with_demo = users + demo.demo_config(date(2025, 1, 1)).split("accounts:\n", 1)[1]
    path.write_text(with_demo, encoding="utf-8")
    assert demo.write_config(path, demo.demo_config(date(2025, 1, 1))) is False
    assert path.read_text(encoding="utf-8") == with_demo


def test_write_config_says_what_to_do_when_dags_is_not_writable(tmp_path: Path) -> None:
    demo = deploy_module("demo_setup")
    blocker = tmp_path / "dags"
    blocker.write_text("a file where the directory should be", encoding="utf-8")
    with pytest.raises(demo.DemoSetupError, match="AIRFLOW_UID"):
        demo.write_config(blocker / "fbmkto_accounts.yaml", demo.demo_config(date(2025, 1, 1)))


# --- deploy/demo_setup.py: waiting for the DAG ---------------------------------------------------------------------


def _done(stdout: str = "", code: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["airflow"], code, stdout=stdout, stderr="")


def _listing(**paused: bool) -> str:
    rows = [{"dag_id": d, "is_paused": str(p)} for d, p in paused.items()]
    return "[warning] Could not import graphviz.\n" + json.dumps(rows)


def test_parse_dag_list_skips_warnings_before_the_json() -> None:
    demo = deploy_module("demo_setup")
    assert demo.parse_dag_list(_listing(fbmkto_sync__demo=True, other=False)) == {
        "fbmkto_sync__demo": True,
        "other": False,
    }
    assert demo.parse_dag_list("No data found\n") == {}


class FakeAirflow:
    """``airflow dags list`` shows the DAG after ``parsed_after`` listings; ``unpause`` flips it."""

    def __init__(self, parsed_after: int) -> None:
        self.listings = 0
        self.parsed_after = parsed_after
        self.paused = True
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[:2] == ("dags", "list"):
            self.listings += 1
            return _done(_listing(fbmkto_sync__demo=self.paused) if self.listings > self.parsed_after else "[]")
        if args[:2] == ("dags", "unpause"):
            if self.listings > self.parsed_after:
                self.paused = False
            return _done("No paused DAGs were found")  # what Airflow says for an unknown DAG, with exit 0
        raise AssertionError(args)


def test_wait_and_unpause_unpauses_only_once_the_dag_is_parsed() -> None:
    demo = deploy_module("demo_setup")
    fake, slept, now = FakeAirflow(parsed_after=3), [], [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    demo.wait_and_unpause("fbmkto_sync__demo", timeout=60, interval=5, run=fake, sleep=sleep, clock=lambda: now[0])
    assert fake.paused is False
    assert slept == [5, 5, 5]
    assert [c[:2] for c in fake.calls].index(("dags", "unpause")) == 4  # after the 4th listing showed it


def test_wait_and_unpause_gives_up_with_a_hint() -> None:
    demo = deploy_module("demo_setup")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    fake = FakeAirflow(parsed_after=10**6)
    with pytest.raises(demo.DemoSetupError, match="list-import-errors"):
        demo.wait_and_unpause("fbmkto_sync__demo", timeout=20, interval=5, run=fake, sleep=sleep, clock=lambda: now[0])
    assert ("dags", "unpause", "fbmkto_sync__demo") not in fake.calls


# --- deploy/demo_setup.py end to end (without the Airflow scheduler) ----------------------------------------------


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The compose file's demo connections, pointed at in-process emulators; a SQLite state DB in tmp."""
    common = compose()["x-airflow-common"]["environment"]
    root, handlers = logging.getLogger(), list(logging.getLogger().handlers)
    with (
        FreshBooksEmulator(seed="demo") as fb,
        MarketoEmulator(lists={1001: "FB Paid", 1002: "FB Overdue"}) as mkto,
    ):
        for variable, emu in (("AIRFLOW_CONN_FRESHBOOKS_DEMO", fb), ("AIRFLOW_CONN_MARKETO_DEMO", mkto)):
            conn = json.loads(common[variable])
            conn["host"] = emu.url
            monkeypatch.setenv(variable, json.dumps(conn))
        state_url = f"sqlite:///{tmp_path / 'state.db'}"
        monkeypatch.setenv(
            "AIRFLOW_CONN_FBMKTO_STATE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "state.db")})
        )
        key = Fernet.generate_key().decode()
        monkeypatch.setenv("FBMKTO_FERNET_KEY", key)
        yield {
            "fb": fb,
            "mkto": mkto,
            "state_url": state_url,
            "key": key,
            "config": tmp_path / "dags" / "accounts.yaml",
        }
    from airflow_provider_fbmkto.state import StateDB

    StateDB(state_url).dispose()
    # `fbmkto` calls logging.basicConfig, which binds a handler to this test's captured stderr: drop it
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)


def test_demo_setup_provisions_marketo_and_authorizes_freshbooks(demo_env: dict[str, Any], capsys: Any) -> None:
    demo = deploy_module("demo_setup")
    code = demo.main(["--freshbooks-url", demo_env["fb"].url, "--config", str(demo_env["config"]), "--no-airflow"])
    out = capsys.readouterr()
    assert code == 0, out.err
    (account,) = load_config(demo_env["config"]).accounts
    assert account.name == "demo"
    types = {t["apiName"] for t in demo_env["mkto"].activity_types()}
    assert {"fbInvoiceSent", "fbPaymentReceived", "fbInvoiceOverdue"} <= types
    token_calls = [c for c in demo_env["fb"].calls if c.path == "/auth/oauth/token"]
    assert [c.body.get("grant_type") for c in token_calls] == ["authorization_code"]
    from airflow_provider_fbmkto.state import StateDB

    pair = StateDB(demo_env["state_url"], fernet_key=demo_env["key"]).tokens.load("freshbooks_demo")
    assert pair is not None
    assert pair.refresh_token
    assert pair.refresh_token not in out.out + out.err
    assert pair.access_token not in out.out + out.err


def test_demo_setup_fails_with_a_message_when_the_url_is_not_the_freshbooks_emulator(
    demo_env: dict[str, Any], capsys: Any
) -> None:
    demo = deploy_module("demo_setup")
    wrong = demo_env["mkto"].url  # a live server that is not the FreshBooks emulator
    code = demo.main(["--freshbooks-url", wrong, "--config", str(demo_env["config"]), "--no-airflow"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("demo-setup: the FreshBooks emulator at"), err
    assert "POST /_emulator/code" in err
    assert "Traceback" not in err
    assert not [c for c in demo_env["fb"].calls if c.path == "/auth/oauth/token"], "nothing was authorized"


# --- deploy/init_state_db.py ------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_init_state_db_creates_the_database_and_schema_once(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    import psycopg2

    name = f"fbmkto_deploy_{uuid.uuid4().hex[:10]}"
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    monkeypatch.setenv("AIRFLOW_CONN_FBMKTO_STATE", url)
    init = deploy_module("init_state_db")
    from airflow_provider_fbmkto.state import StateDB

    try:
        assert init.main([]) == 0
        assert init.main([]) == 0
        out = capsys.readouterr().out
        assert out.count(f"created the database {name!r}") == 1, out
        conn = psycopg2.connect(dbname=name, **PG)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT value FROM fbmkto_meta WHERE key = 'schema_version'")
                assert cur.fetchone() is not None
        finally:
            conn.close()
    finally:
        StateDB(url).dispose()
        admin = psycopg2.connect(dbname="postgres", **PG)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()
