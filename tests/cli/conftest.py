"""Fixtures of the CLI tests: a private AIRFLOW_HOME (its SQLite state DB), a Fernet key, clean Marketo state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_provider_fbmkto.hooks.marketo_limits import reset_process_state


@pytest.fixture(autouse=True)
def airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("FBMKTO_FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("FBMKTO_CONFIG", raising=False)
    reset_process_state()
    yield tmp_path
    reset_process_state()
