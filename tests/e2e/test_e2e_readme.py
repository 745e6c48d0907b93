"""Docs as tests: README's install path, pasted in order, works with the built wheel in a fresh venv.

The ```bash blocks under README's "Install into your Airflow", "Connections", "Accounts config" and "Runs,
backfills, manual runs" are read from README.md and run, in order, as one bash script in an empty directory
with a fresh ``AIRFLOW_HOME``, against ``fbmkto emulate`` (which the blocks start themselves). Two things
are changed, and only these: the ``pip install airflow-provider-fbmkto`` line is left out (the venv already
has the wheel built from this checkout, installed with the locked dependencies), and the emulator port is
a free one. The README's sentences about which days each command covers are checked against what the runs
did. A second test runs ``fbmkto demo`` from an empty directory with the same wheel (the wheel stands alone).

Building the venv takes about a second: uv links the locked packages from its cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SECTIONS = ("Install into your Airflow", "Connections", "Accounts config", "Runs, backfills, manual runs")
PIP_LINE = "pip install airflow-provider-fbmkto"
README_PORT = "--port 18080"

# The README's sentences about the windows, each checked below against what the commands did.
DAGS_TEST_SENTENCE = (
    "`airflow dags test fbmkto_sync__acme 2025-03-05` reads the date as UTC midnight (19:00 on 4 March in New "
    "York) and runs the last whole day before it: 3 March in New York, `[2025-03-03T05:00Z, 2025-03-04T05:00Z)`"
)
BACKFILL_SENTENCE = (
    "`airflow backfill create --from-date 2025-03-01 --to-date 2025-03-31` makes one run per day whose start in "
    "the account's zone lies between the two dates read as UTC midnights: 1 to 30 March in New York (30 runs; "
    "31 March starts at 04:00Z, after `2025-03-31T00:00Z`)"
)
TRIGGER_SENTENCE = (
    "A manual run's `window_start` / `window_end` given as dates are the account's midnights: `2025-03-01` and "
    "`2025-03-08` cover 1 to 7 March in New York, `[2025-03-01T05:00Z, 2025-03-08T05:00Z)`"
)


def sections(text: str) -> dict[str, str]:
    """README's ``## `` sections by heading."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def fenced(section: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", section, flags=re.M | re.S)


def readme_script(port: int) -> str:
    found = sections(README.read_text())
    blocks: list[str] = []
    for name in SECTIONS:
        assert name in found, f"README has no section '## {name}'"
        blocks += fenced(found[name], "bash")
    script = "\n".join(blocks)
    assert PIP_LINE in script, "the README's install line changed"
    assert README_PORT in script, "the README's emulator port changed"
    lines = [
        f"# (installed: the venv has the wheel) {line}" if line.startswith(PIP_LINE) else line
        for line in script.splitlines()
    ]
    return "\n".join(lines).replace(README_PORT, f"--port {port}") + "\n"


def free_pair() -> int:
    """A port ``p`` with ``p + 1`` free too (``fbmkto emulate both`` takes both)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two adjacent free ports")


def uv() -> str:
    found = shutil.which("uv") or str(REPO / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("uv is not installed (make setup installs it into .tools/)")
    return found


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout and the locked runtime dependencies only."""
    base = tmp_path_factory.mktemp("wheel")
    tool = uv()
    subprocess.run([tool, "build", "-q", "--wheel", "--out-dir", str(base / "dist"), str(REPO)], check=True)
    (wheel,) = (base / "dist").glob("airflow_provider_fbmkto-*.whl")
    names = {
        n.split("/", 1)[1]
        for n in subprocess.run(["unzip", "-Z1", str(wheel)], capture_output=True, text=True, check=True).stdout.split()
        if n.startswith("airflow_provider_fbmkto/example_dags/")
    }
    assert names == {
        "example_dags/freshbooks_to_marketo.py",
        "example_dags/fbmkto_config_check.py",
        "example_dags/fbmkto_accounts.example.yaml",
    }
    reqs = base / "requirements.txt"
    export = [tool, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "-q", "-o", str(reqs)]
    subprocess.run(export, check=True, cwd=REPO)
    venv = base / "venv"
    subprocess.run([tool, "venv", "-q", "-p", str(REPO / ".venv" / "bin" / "python"), str(venv)], check=True)
    install = [tool, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), "-r", str(reqs), str(wheel)]
    subprocess.run(install, check=True)
    return venv


def clean_env(venv: Path, home: Path) -> dict[str, str]:
    """The environment of a new shell: none of the suite's Airflow/fbmkto settings, the venv first on PATH."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "FBMKTO", "PYTHON", "VIRTUAL_ENV", "UV_", "_AIRFLOW"))
    }
    keep |= {
        "AIRFLOW_HOME": str(home),
        "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
    }
    keep["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"  # a new Airflow's example DAGs only slow the parse down
    return keep


def run_script(script: str, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run ``script`` with ``bash -euo pipefail``; stop whatever it left running (the emulators) afterwards."""
    (cwd / "readme.sh").write_text(script)
    log = cwd / "readme.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "readme.sh"],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    text = log.read_text()
    assert code == 0, f"README commands failed (exit {code}):\n{text[-6000:]}"
    return text


@pytest.fixture
def readme_world(wheel_venv: Path, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], str]]:
    home, work = tmp_path / "airflow-home", tmp_path / "work"
    work.mkdir()
    env = clean_env(wheel_venv, home)
    started = time.monotonic()
    output = run_script(readme_script(free_pair()), work, env, timeout=240)
    print(f"README commands ran in {time.monotonic() - started:.0f} s")
    return home, env, output


def test_readme_install_path_works_pasted_in_order_with_the_wheel(
    readme_world: tuple[Path, dict[str, str], str],
) -> None:
    home, env, output = readme_world
    text = README.read_text()
    # The accounts config the README shows is the one init-dags wrote (the example file the wheel ships).
    (shown,) = fenced(sections(text)["Accounts config"], "yaml")
    assert yaml.safe_load(shown) == yaml.safe_load((home / "dags" / "fbmkto_accounts.yaml").read_text())
    assert "[ok] acme: Marketo preflight" in output  # fbmkto check, segments 1001/1002 included

    # dags test: one successful run over 3 March in New York.
    (report_file,) = (home / "fbmkto" / "reports" / "acme").glob("manual__*.json")
    report = json.loads(report_file.read_text())
    assert DAGS_TEST_SENTENCE in text
    assert report["window"] == {"start": "2025-03-03T05:00:00+00:00", "end": "2025-03-04T05:00:00+00:00"}
    assert not report["failures"]

    listed = subprocess.run(
        ["airflow", "dags", "list-runs", "fbmkto_sync__acme", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # Airflow may print warnings before the JSON: the document is the line that starts with "[{".
    (runs,) = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("[{")]
    states = {r["run_id"]: r["state"] for r in runs}
    assert any(state == "success" for rid, state in states.items() if rid.startswith("manual__"))

    # backfill: 30 runs, the days 1..30 March starting at New York midnight.
    backfill = sorted(r["logical_date"] for r in runs if r["run_id"].startswith("backfill__"))
    assert BACKFILL_SENTENCE in text
    assert len(backfill) == 30
    assert backfill[0].startswith("2025-03-01T05:00:00")
    assert backfill[-1].startswith("2025-03-30T04:00:00")

    # trigger: a queued manual run with the README's dates; what they mean is tests/sync/test_readme_windows.py.
    assert TRIGGER_SENTENCE in text
    triggered = [r for r in runs if r["run_id"].startswith("manual__") and r["state"] != "success"]
    assert len(triggered) == 1
    assert not triggered[0]["logical_date"]
    listed = subprocess.run(
        ["airflow", "dags", "list", "-o", "json"], env=env, capture_output=True, text=True, check=True
    )
    (dags,) = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("[{")]
    assert [d["is_paused"] for d in dags if d["dag_id"] == "fbmkto_sync__acme"] == ["False"]


def test_fbmkto_demo_runs_from_an_empty_directory_with_the_wheel_alone(wheel_venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    env = clean_env(wheel_venv, work / ".airflow")
    env.pop("AIRFLOW_HOME")
    demo = subprocess.run(
        ["fbmkto", "demo", "--backfill-days", "2"], cwd=work, env=env, capture_output=True, text=True, timeout=400
    )
    assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
    assert "demo finished in" in demo.stdout
    assert (work / ".airflow" / "demo" / "dags" / "freshbooks_to_marketo.py").exists()
