"""The ``FBMKTO_TEST_TODAY`` knob (:mod:`tests.moved_today`): parsing, and -- on a moved run -- that it moved.

``.ci/run`` runs this file in every moved-date pass, so a pass whose clock silently stayed put fails instead
of passing on the real date.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from tests import moved_today


def test_a_bare_date_is_noon_utc_and_a_time_without_offset_is_utc():
    assert moved_today.parse("2028-02-29") == datetime(2028, 2, 29, 12, tzinfo=timezone.utc)
    assert moved_today.parse("2026-03-08T06:45Z") == datetime(2026, 3, 8, 6, 45, tzinfo=timezone.utc)
    assert moved_today.parse("2026-11-01T01:30") == datetime(2026, 11, 1, 1, 30, tzinfo=timezone.utc)
    assert moved_today.parse("2026-11-01T01:30-04:00") == datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc)


def test_a_bad_value_names_the_variable_and_the_form():
    with pytest.raises(ValueError, match=r"FBMKTO_TEST_TODAY='2026-13-01' is not an ISO date.*2026-12-31"):
        moved_today.parse("2026-13-01")


def test_the_offset_is_relative_and_the_fix_is_preloaded_first():
    now = datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)
    env = moved_today.faketime_env(now - timedelta(days=1, seconds=30), now, "/lib/libfaketime.so.1", "/tmp/fix.so")
    assert env["FAKETIME"] == "-86430"
    assert env["LD_PRELOAD"].split()[:2] == ["/tmp/fix.so", "/lib/libfaketime.so.1"]
    assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"


def test_the_real_clock_env_drops_only_faketime():
    env = {
        "LD_PRELOAD": "/tmp/fbmkto-faketime-sleep-fix-1.so /usr/lib/faketime/libfaketime.so.1 /opt/other.so",
        "FAKETIME": "+5",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "PATH": "/bin",
    }
    assert moved_today.real_clock_env(env) == {"LD_PRELOAD": "/opt/other.so", "PATH": "/bin"}
    assert "LD_PRELOAD" not in moved_today.real_clock_env({"LD_PRELOAD": "/usr/lib/faketime/libfaketime.so.1"})


@pytest.mark.skipif(not os.environ.get(moved_today.ENV), reason="FBMKTO_TEST_TODAY is not set: the clock is real")
def test_this_run_and_its_child_processes_read_the_moved_clock():
    target = moved_today.parse(os.environ[moved_today.ENV])
    child = subprocess.run(
        [sys.executable, "-c", "import datetime; print(datetime.datetime.now(datetime.timezone.utc).isoformat())"],
        capture_output=True,
        text=True,
        check=True,
    )
    for now in (datetime.now(timezone.utc), datetime.fromisoformat(child.stdout.strip())):
        # the run started at ``target``; this file runs within the pass, so within a few hours of it
        assert target - timedelta(seconds=5) <= now <= target + timedelta(hours=3), now
