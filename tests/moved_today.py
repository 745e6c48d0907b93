"""``FBMKTO_TEST_TODAY``: run tests as if "now" were another instant, for every process they start.

``FBMKTO_TEST_TODAY=2028-02-29T03:30Z pytest tests/ui`` re-runs pytest under libfaketime (``LD_PRELOAD``) with
the clock shifted so that it reads that instant when the run starts and moves on in real time from there. The
shift is one offset inherited by every child process (the Airflow scheduler, dag-processor, api-server and
``airflow dags test``, xdist workers), so the tests, the emulators' clocks, the demo seed's "today", Airflow's
data intervals and SQLite's ``now`` all agree on the moved date. Nothing in the package reads this variable:
production code sees the moved clock only because the C library's clock is moved under it.

A bare date (``2026-12-31``) means noon UTC, the same calendar day in UTC, US/Eastern and US/Central; give a
time to land near a hard instant (``2026-03-08T06:45Z`` is 01:45 EST, 15 minutes before the DST switch).
Needs Debian's ``faketime`` package (``apt-get install faketime``) or ``FBMKTO_LIBFAKETIME=/path/libfaketime.so.1``,
and a C compiler for the small fix preloaded before it (``faketime_sleep_fix.c``, built once into the temp dir).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

ENV = "FBMKTO_TEST_TODAY"
LIBRARY_ENV = "FBMKTO_LIBFAKETIME"
_LIBRARIES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
#: Set in the re-executed process: the target instant, for the report header (and so it never re-executes twice).
_APPLIED = "FBMKTO_TEST_TODAY_APPLIED"


def parse(value: str) -> datetime:
    """The instant ``FBMKTO_TEST_TODAY`` names: an ISO date (noon UTC) or datetime (UTC unless it has an offset)."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(12), tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{ENV}={value!r} is not an ISO date or datetime; use e.g. {ENV}=2026-12-31 or {ENV}=2026-03-08T06:45Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def library() -> str | None:
    """Path of libfaketime, or None when it is not installed."""
    candidates = [os.environ[LIBRARY_ENV]] if os.environ.get(LIBRARY_ENV) else list(_LIBRARIES)
    return next((c for c in candidates if Path(c).is_file()), None)


def sleep_fix() -> str:
    """Path of the compiled ``faketime_sleep_fix.c`` (built on first use, keyed by its source)."""
    source = Path(__file__).with_name("faketime_sleep_fix.c")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    built = Path(tempfile.gettempdir()) / f"fbmkto-faketime-sleep-fix-{digest}.so"
    if built.is_file():
        return str(built)
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError(f"{ENV} needs a C compiler for {source.name}: apt-get install gcc (or set CC)")
    partial = built.with_suffix(f".{os.getpid()}.tmp")
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(source), "-ldl"], check=True)
    partial.replace(built)
    return str(built)


def faketime_env(target: datetime, now: datetime, lib: str, fix: str) -> dict[str, str]:
    """Variables that make a process (and its children) read ``target`` at ``now`` and tick on in real time."""
    offset = round((target - now).total_seconds())
    preload = " ".join(p for p in (fix, lib, os.environ.get("LD_PRELOAD", "")) if p)
    return {
        "LD_PRELOAD": preload,
        "FAKETIME": f"{offset:+d}",  # a relative offset: the same for every process, whenever it starts
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",  # timeouts and sleeps keep real durations
        _APPLIED: target.isoformat(),
    }


def real_clock_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the moved clock, for a program that cannot run under libfaketime (Chromium)."""
    out = {k: v for k, v in env.items() if not k.startswith("FAKETIME")}
    preload = " ".join(p for p in out.get("LD_PRELOAD", "").split() if "faketime" not in Path(p).name)
    if preload:
        out["LD_PRELOAD"] = preload
    else:
        out.pop("LD_PRELOAD", None)
    return out


def reexec_if_asked(config: Any) -> None:
    """When ``FBMKTO_TEST_TODAY`` is set and this pytest does not run under the moved clock yet, re-run it there.

    Called from ``pytest_configure`` (before xdist starts workers): the process is replaced, so the caller
    (``make test``, ``.ci/run``) gets the moved run's exit code.
    """
    value = os.environ.get(ENV)
    if not value or os.environ.get(_APPLIED):
        return
    target = parse(value)
    lib = library()
    if lib is None:
        raise RuntimeError(
            f"{ENV} needs libfaketime to move the clock of every process: apt-get install faketime "
            f"(or set {LIBRARY_ENV} to the path of libfaketime.so.1)"
        )
    env = {**os.environ, **faketime_env(target, datetime.now(timezone.utc), lib, sleep_fix())}
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:  # give the new process the real stdout/stderr, not pytest's capture files
        capture.suspend_global_capture(in_=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]], env)


def header() -> str | None:
    """One line for pytest's report header when the clock is moved."""
    applied = os.environ.get(_APPLIED)
    if not applied:
        return None
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return f"{ENV}: clock moved by libfaketime (FAKETIME={os.environ.get('FAKETIME')}); now {now.isoformat()}"
