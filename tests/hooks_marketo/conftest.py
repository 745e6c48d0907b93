"""Fixtures: a Marketo emulator on a free port with a shortened rate window, exported as the default connection.

Every test gets its own AIRFLOW_HOME (so its own SQLite state DB and daily budget), a Fernet key, and a clean
process-wide Marketo state (limiters, token cache, quota stop): emulators may reuse a port of an earlier test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

#: The emulators' window: Marketo's 20 s shortened 20x (the hook scales every wait by the same factor).
WINDOW = 1.0


@pytest.fixture(autouse=True)
def airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    reset_process_state()
    yield
    reset_process_state()


@pytest.fixture
def make_marketo(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., MarketoEmulator]]:
    """Start an emulator with the given options and export it as ``marketo_default`` (conn extras via ``conn``)."""
    with ExitStack() as stack:

        def make(
            conn: dict[str, Any] | None = None, conn_id: str = "marketo_default", **options: Any
        ) -> MarketoEmulator:
            options.setdefault("window_seconds", WINDOW)
            emu = stack.enter_context(MarketoEmulator(port=0, **options))
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", emu.conn_json(**(conn or {})))
            return emu

        yield make


@pytest.fixture
def marketo(make_marketo: Callable[..., MarketoEmulator]) -> MarketoEmulator:
    return make_marketo()


def rest_codes(emu: MarketoEmulator) -> list[str]:
    """Every response-level code the emulator answered to REST calls."""
    return [code for call in emu.rest_calls() for code in call.codes]
