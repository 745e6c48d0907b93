"""Fixtures: a FreshBooks emulator on a free port, its connection exported, a fresh AIRFLOW_HOME and Fernet key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto import cli
from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook
from airflow_provider_fbmkto.state import StateDB, TokenPair
from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.freshbooks.routes import CallRecord


@pytest.fixture
def airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private AIRFLOW_HOME (the state DB lands in it) and Fernet key; no accounts config."""
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("FBMKTO_CONFIG", raising=False)
    return tmp_path


@pytest.fixture
def emulator(airflow_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FreshBooksEmulator]:
    with FreshBooksEmulator(port=0) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_FRESHBOOKS_DEFAULT", emu.conn_json())
        yield emu


def authorize(emu: FreshBooksEmulator, conn_id: str = "freshbooks_default", **issue: str) -> None:
    """The CLI's non-interactive authorization-code flow, as a user runs it."""
    assert cli.main(["authorize", "--conn-id", conn_id, "--code", emu.issue_code(**issue)]) == 0


@pytest.fixture
def authorized(emulator: FreshBooksEmulator) -> FreshBooksEmulator:
    authorize(emulator)
    return emulator


def hook(**kwargs: object) -> FreshBooksHook:
    """A hook whose retry sleeps are skipped (tests pass ``sleep=`` to record them instead)."""
    kwargs.setdefault("sleep", lambda _s: None)
    return FreshBooksHook(**kwargs)  # type: ignore[arg-type]


def conn_json_without(emu: FreshBooksEmulator, *drop: str, **extra: str) -> str:
    """The emulator's connection JSON with extras ``drop`` removed and ``extra`` added."""
    conn = json.loads(emu.conn_json())
    for key in drop:
        conn["extra"].pop(key, None)
    conn["extra"].update(extra)
    return json.dumps(conn)


def stored_pair(conn_id: str = "freshbooks_default") -> TokenPair:
    """The token pair in the state DB (fails the test when there is none)."""
    pair = StateDB.from_airflow().tokens.load(conn_id)
    assert pair is not None, f"no token pair stored for {conn_id}"
    return pair


def grant(call: CallRecord) -> str:
    """The ``grant_type`` a token call sent."""
    assert call.body is not None
    return str(call.body["grant_type"])
