"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import pg_unreachable_reason, throwaway_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database for this session; skips with the reason where there is none."""
    reason = pg_unreachable_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_database() as url:
        yield url
