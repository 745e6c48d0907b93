"""``fbmkto owners list|release`` over a state DB, and ``fbmkto check`` warning about rules that overlap."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_fbmkto.cli import main as fbmkto
from airflow_provider_fbmkto.state import StateDB
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

MKTO = "mkto.example:443"
OVERLAP = """\
defaults:
  marketo_conn_id: marketo_default
  schedule: "@daily"
  start_date: "2025-01-01"
accounts:
  - name: acme
    freshbooks_conn_id: freshbooks_acme
    matching: {rules: [{email: cfo@zeta.io, company: Zeta}]}
  - name: globex
    freshbooks_conn_id: freshbooks_globex
    matching: {rules: [{email: cfo@zeta.io, company: Zeta Two}]}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = fbmkto(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


def test_owners_list_and_release(airflow_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = StateDB.from_airflow()
    db.owners.claim(MKTO, "lead", "acme", ["ann@bigco.io", "bob@bigco.io"], run_id="r1")
    db.owners.claim(MKTO, "company", "acme", ["bigco.io"], run_id="r1")
    db.owners.claim(MKTO, "lead", "globex", ["cy@zeta.io"], run_id="r2")

    code, out = run(capsys, "owners", "list", "--account", "acme")
    assert code == 0
    assert len(out.splitlines()) == 3
    assert "lead     ann@bigco.io  owned by acme since" in out

    code, out = run(capsys, "owners", "release", "--account", "acme")
    assert code == 1
    assert "name what to release: --email EMAIL, --company KEY (repeatable), or --all" in out

    code, out = run(
        capsys, "owners", "release", "--account", "acme", "--email", "Ann@BigCo.io", "--company", "bigco.io"
    )
    assert code == 0
    assert "released 2 keys of account acme" in out
    assert db.owners.claim(MKTO, "lead", "globex", ["ann@bigco.io"], run_id="r3") == {"ann@bigco.io": "globex"}
    code, out = run(capsys, "owners", "release", "--account", "acme", "--all")
    assert "released 1 keys" in out
    code, out = run(capsys, "owners", "list", "--account", "acme")
    assert out.strip() == "no owned keys of account acme"


def test_check_warns_about_rules_of_several_accounts_for_one_email(
    airflow_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FreshBooksEmulator(seed="demo") as fb, MarketoEmulator(window_seconds=1.0) as mk:
        for conn_id in ("freshbooks_acme", "freshbooks_globex"):
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", fb.conn_json())
            assert fbmkto(["authorize", "--conn-id", conn_id, "--code", fb.issue_code()]) == 0
        monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", mk.conn_json())
        config = airflow_env / "accounts.yaml"
        config.write_text(OVERLAP)
        assert fbmkto(["setup-marketo", "--config", str(config)]) == 0
        capsys.readouterr()
        code, out = run(capsys, "check", "--config", str(config))
    assert code == 0, out  # a warning, not a failure
    (warning,) = [line for line in out.splitlines() if line.startswith("[warn]")]
    assert "accounts 'acme', 'globex' all have a matching rule for email cfo@zeta.io" in warning
    assert "set marketo.leads.shared: true in each of these accounts" in warning
