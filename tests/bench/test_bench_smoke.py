"""The benchmark at a tiny scale: its JSON document, and the call counts it reports against the emulators' truth.

No timing is asserted (a loaded CI machine would make any threshold flaky): only shapes and counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import cli, scenarios
from bench.world import Settings, World, build_world

MARKETO_WRITE_KINDS = ("company", "lead", "activity", "list")
TINY = ["--scale", "700", "--time-scale", "0.05", "--marketo-latency", "0.2", "--backfill-days", "2"]


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``python -m bench`` at a tiny scale (all three scenarios), read back from ``--output``."""
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    assert cli.main([*TINY, "--output", str(out)]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_document_has_every_figure_the_issue_asks_for(document: dict[str, Any]) -> None:
    assert set(document["scenarios"]) == {"full_load", "steady_state", "backfill"}
    assert {"cpu", "cores", "python"} <= set(document["machine"])
    assert document["seeded"]["total"] == sum(document["seeded"][k] for k in ("clients", "invoices", "payments"))
    for name, s in document["scenarios"].items():
        assert set(s["freshbooks"]["records"]) == {"client", "invoice", "payment"}, name
        assert {"write_calls", "write_minimum", "token_calls", "all_calls"} <= set(s["marketo"]), name
        phases = s["time"]["phases"]
        assert list(phases) == ["extract", "map", "load", "reconcile", "report"], name
        assert all(p["seconds"] > 0 and p["emulated_seconds"] >= p["seconds"] for p in phases.values()), name
        assert s["time"]["floor_emulated_seconds"] == pytest.approx(
            (s["marketo"]["write_minimum"] + s["marketo"]["read_minimum"]) * 20 / 100, abs=0.01
        )
        assert 50 < s["memory"]["peak_rss_mb"] < 4096, name
        assert s["throughput"]["marketo_records_per_s"] is not None, name
    assert len(document["scenarios"]["backfill"]["per_run"]) == 2
    targets = {(t["scenario"], t["target"]) for t in document["targets"]}
    assert any(scenario == "steady_state" for scenario, _ in targets)
    for t in document["targets"]:  # every target says its value and limit; a size it is not for says so
        assert {"value", "limit", "note"} <= set(t), t
        if t["ok"] is None:
            assert "not judged" in t["note"] or "only" in t["note"], t
        else:
            assert isinstance(t["ok"], bool), t
    floor = next(t for t in document["targets"] if "rate-limit floor" in t["target"])
    assert floor["ok"] is None  # a 700-record load is far below the floor the ratio is judged at
    assert "cpu_seconds" in document["scenarios"]["full_load"]["time"]["phases"]["map"]


def test_every_scenario_stays_within_two_percent_of_the_minimum_calls(document: dict[str, Any]) -> None:
    for name, s in document["scenarios"].items():
        mk, fb = s["marketo"], s["freshbooks"]
        assert mk["rejected_calls"] == 0, name
        assert mk["write_calls"] <= 1.02 * mk["write_minimum"] + mk["token_calls"], (name, mk)
        assert mk["read_calls"] <= 1.02 * mk["read_minimum"] + mk["token_calls"], (name, mk)
        # FreshBooks returns deleted records only to a second query per kind (vis_state=1): one call each.
        assert fb["record_calls"] <= 1.02 * fb["record_minimum"] + fb["token_calls"] + 3 * s["runs"], (name, fb)


def test_steady_state_sends_what_changed_not_everything(document: dict[str, Any]) -> None:
    steady, full = document["scenarios"]["steady_state"], document["scenarios"]["full_load"]
    changed = steady["changed"]
    assert changed["clients_affected"] > 0
    assert 0 < steady["marketo"]["records"]["lead"] < full["marketo"]["records"]["lead"]
    assert steady["marketo"]["records"]["lead"] <= changed["clients_affected"] + steady["marketo"]["records"].get(
        "activity", 0
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(Settings(records=700, time_scale=0.05), tmp_path_factory.mktemp("world"))
    w.mk.app.latency = 0.01
    try:
        yield w
    finally:
        w.close()


def test_full_load_counts_match_what_the_emulators_hold(world: World) -> None:
    """Records and minima reported for the first full load agree with the emulators' own state."""
    scenario = scenarios.full_load(world)
    section = scenarios.summarize(scenario, world)
    fb, mk = section["freshbooks"], section["marketo"]
    seeded = world.seeded
    assert fb["records"] == {"client": seeded["clients"], "invoice": seeded["invoices"], "payment": seeded["payments"]}
    assert fb["record_minimum"] == sum(math.ceil(n / 100) for n in seeded.values())

    held = {"activity": len(world.mk.activities()), "lead": len(world.mk.leads()), "company": len(world.mk.companies())}
    assert min(held.values()) > 0
    for kind, n in held.items():  # one load into an empty Marketo: each record sent once, each call full
        assert mk["records"][kind] == n, kind
        assert mk["calls"][kind] == math.ceil(n / 300), kind
    members = len(world.mk.list_members(1001)) + len(world.mk.list_members(1002))
    assert 0 < members <= mk["records"]["list"]
    assert mk["write_calls"] <= 1.02 * mk["write_minimum"] + mk["token_calls"]
    # Each peak is its own task process's: at least what that process held when it started (a forked child
    # need not count all of the worker's pages: those it never touches may stay out of its RSS).
    phases = scenario.runs[0].phases
    for task, phase in phases.items():
        assert 0 < phase.rss_start_kb <= phase.rss_peak_kb, task
    largest_kb = max(p.rss_peak_kb for p in phases.values())  # the summary reports the largest, in 0.1 MB
    assert abs(section["memory"]["peak_rss_mb"] * 1024 - largest_kb) <= 52


def test_parse_scale_reads_the_documented_forms() -> None:
    from bench.world import parse_scale

    assert [parse_scale(s) for s in ("100k", "1m", "2500", "1.5k")] == [100_000, 1_000_000, 2_500, 1_500]
    with pytest.raises(SystemExit):
        parse_scale("lots")


def test_unknown_scenario_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--scenarios", "full_load,everything"])
    assert "unknown scenario" in capsys.readouterr().err


def test_steady_state_needs_the_full_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--scenarios", "steady_state", "--workdir", str(tmp_path)])
    assert "after full_load" in capsys.readouterr().err
