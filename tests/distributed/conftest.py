"""Shows the distributed run's figures at the end of the pytest output (also with ``-q`` and under xdist).

The test keeps them in ``config.stash`` and writes them to ``FIGURES_FILE``; under pytest-xdist the test runs
in a worker, so the controller reads the file (when this session wrote it).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from distributed_stack import FIGURES_FILE, FIGURES_KEY

_started = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_started] = time.time()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    figures = config.stash.get(FIGURES_KEY, None)
    if not figures and FIGURES_FILE.exists() and FIGURES_FILE.stat().st_mtime >= config.stash.get(_started, 0):
        figures = json.loads(FIGURES_FILE.read_text())
    if not figures:
        return
    terminalreporter.section("fbmkto distributed run: figures")
    for key, value in figures.items():
        text = value if isinstance(value, str | int | float) else json.dumps(value, default=str)
        terminalreporter.write_line(f"{key}: {text}")
