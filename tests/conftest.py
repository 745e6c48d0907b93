"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests import moved_today
from tests.pg import pg_unreachable_reason, throwaway_database

# No timing thresholds in unit tests: Hypothesis' default 200 ms deadline per example fails property tests on a
# busy machine (a first example paying for imports) while proving nothing about the code.
settings.register_profile("fbmkto", deadline=None)
settings.load_profile("fbmkto")


def pytest_configure(config: pytest.Config) -> None:
    moved_today.reexec_if_asked(config)  # FBMKTO_TEST_TODAY: this run and every process it starts on a moved clock


#: Folders whose files take minutes each (real DAG runs, a browser, a benchmark): collected first, so that with
#: ``-n 2 --dist loadfile --no-loadscope-reorder`` (``make test``) the long files start early and the short ones
#: fill the gaps, instead of the longest file starting last and running alone while the other worker idles.
LONG_FILES_FIRST = ("tests/ui/test_ui_browser.py", "tests/e2e/", "tests/reliability/", "tests/bench/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next((i for i, prefix in enumerate(LONG_FILES_FIRST) if path.startswith(prefix)), len(LONG_FILES_FIRST))

    items.sort(key=rank)  # stable: each file's tests keep their order


def pytest_report_header() -> str | None:
    return moved_today.header()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database for this session; skips with the reason where there is none."""
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_database() as url:
        yield url
