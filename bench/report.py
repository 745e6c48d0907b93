"""The benchmark document (JSON) with the issue's targets evaluated, and a short human table."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

#: the targets of the benchmark issue
CALL_SLACK = 1.02
FLOOR_SLACK = 1.2
RSS_LIMIT_MB = 200.0
RSS_AT_RECORDS = 1_000_000
SMALL_SYNC_CALLS = 100
#: a small sync's Marketo span may exceed its calls' own time by this much (ledger work between calls)
SMALL_SYNC_SLACK = 1.5


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS and Python of this machine."""
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal"):
                    info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    return info


def _target(name: str, scenario: str, value: float | None, limit: float, note: str = "") -> dict[str, Any]:
    ok = value is not None and value <= limit
    return {"target": name, "scenario": scenario, "value": value, "limit": round(limit, 4), "ok": ok, "note": note}


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Evaluate the issue's targets on the scenarios that ran."""
    out: list[dict[str, Any]] = []
    scen = doc["scenarios"]
    records = doc["settings"]["records"]
    if "full_load" in scen:
        s = scen["full_load"]
        mk = s["marketo"]
        judged_min = mk["write_minimum"] + mk["read_minimum"]
        non_token = mk["all_calls"] - mk["token_calls"]
        out.append(
            _target(
                "first full load: Marketo calls (all but token calls) / minimum",
                "full_load",
                round(non_token / judged_min, 4) if judged_min else None,
                CALL_SLACK,
                f"{non_token} calls ({mk['token_calls']} token calls besides) for a minimum of {judged_min}",
            )
        )
        fb = s["freshbooks"]
        out.append(
            _target(
                "first full load: FreshBooks calls / minimum",
                "full_load",
                fb["ratio"],
                CALL_SLACK,
                f"{fb['record_calls']} calls for a minimum of {fb['record_minimum']} ({fb['token_calls']} token calls)",
            )
        )
        t = s["time"]
        out.append(
            _target(
                "large load: Marketo phase (load) wall time / rate-limit floor",
                "full_load",
                t["load_vs_floor"],
                FLOOR_SLACK,
                f"load {t['phases']['load']['emulated_seconds']} emulated s, floor {t['floor_emulated_seconds']} s; "
                f"whole run {t['total_emulated_seconds']} emulated s ({t['total_vs_floor']} x floor)",
            )
        )
    if "steady_state" in scen:
        s = scen["steady_state"]
        mk = s["marketo"]
        out.append(
            _target(
                "steady state: Marketo write calls / minimum for the records sent",
                "steady_state",
                mk["write_ratio"],
                CALL_SLACK,
                f"{mk['write_calls']} write calls for a minimum of {mk['write_minimum']}",
            )
        )
        changed = s.get("changed", {})
        bound = int(changed.get("clients_affected", 0)) + int(mk["records"].get("activity", 0))
        leads = int(mk["records"].get("lead", 0))
        out.append(
            _target(
                "steady state: leads sent / (clients changed + activities of the day)",
                "steady_state",
                round(leads / bound, 4) if bound else None,
                1.0,
                f"{leads} leads sent; {changed.get('clients_affected')} clients changed, "
                f"{mk['records'].get('activity', 0)} activities; a full re-upsert would send "
                f"{doc['seeded']['clients']} leads",
            )
        )
    if "backfill" in scen:
        small = [
            r
            for r in scen["backfill"]["per_run"]
            if r["marketo_calls"] < SMALL_SYNC_CALLS and r["load_marketo_busy_emulated_seconds"] > 0
        ]
        if small:
            # "Not paced": the load's Marketo calls, first arrival to last answer, take no longer than the same
            # calls one after the other (their own durations added up) plus a little for the ledger in between.
            worst = max(
                small, key=lambda r: r["load_marketo_span_emulated_seconds"] / r["load_marketo_busy_emulated_seconds"]
            )
            span, busy = worst["load_marketo_span_emulated_seconds"], worst["load_marketo_busy_emulated_seconds"]
            out.append(
                _target(
                    "small syncs (< 100 Marketo calls): load's Marketo span / the calls' own time",
                    "backfill",
                    round(span / busy, 4),
                    SMALL_SYNC_SLACK,
                    f"worst of {len(small)} small runs: {worst['run_id']}, {worst['load_calls']} calls in "
                    f"{span} emulated s, their own durations add up to {busy} s (calls spaced evenly at 90 per 20 s "
                    f"would take at least {round((worst['load_calls'] - 1) * 20 / 90, 1)} s plus their durations)",
                )
            )
    for name, s in scen.items():
        out.append(
            _target(
                "peak RSS of a task process (MB)",
                name,
                s["memory"]["peak_rss_mb"],
                RSS_LIMIT_MB,
                "the target is for 1M records" if records < RSS_AT_RECORDS else "",
            )
        )
    return out


def table(doc: dict[str, Any]) -> str:
    """A few lines for humans (stderr)."""
    st = doc["settings"]
    lines = [
        f"fbmkto bench: {doc['seeded']['total']:,} FreshBooks records ({doc['seeded']['clients']:,} clients), "
        f"time scale {st['time_scale']} (Marketo window {st['window_seconds']:g} s real = 20 s emulated), "
        f"{doc['machine']['cores']} cores",
        f"{'scenario':<13}{'runs':>5}{'FB rec':>9}{'FB calls/min':>14}{'MK rec':>9}{'MK calls/min':>14}"
        f"{'load emu s':>11}{'floor s':>9}{'load/fl':>8}{'total s':>9}{'rec/s':>8}{'RSS MB':>8}",
    ]
    for name, s in doc["scenarios"].items():
        fb, mk, t = s["freshbooks"], s["marketo"], s["time"]
        mk_rec = sum(v for k, v in mk["records"].items() if k not in ("lead_read",))
        mk_calls = mk["all_calls"] - mk["token_calls"]
        fb_ratio = f"{fb['record_calls']}/{fb['record_minimum']}"
        mk_ratio = f"{mk_calls}/{mk['write_minimum'] + mk['read_minimum']}"
        lines.append(
            f"{name:<13}{s['runs']:>5}{sum(fb['records'].values()):>9,}{fb_ratio:>14}{mk_rec:>9,}{mk_ratio:>14}"
            f"{t['phases']['load']['emulated_seconds']:>11.1f}{t['floor_emulated_seconds']:>9.1f}"
            f"{(t['load_vs_floor'] or 0):>8.2f}{t['total_seconds']:>9.1f}"
            f"{(s['throughput']['marketo_records_per_s'] or 0):>8.0f}{s['memory']['peak_rss_mb']:>8.1f}"
        )
    for name, s in doc["scenarios"].items():
        phases = ", ".join(f"{k} {v['seconds']:.1f}s" for k, v in s["time"]["phases"].items())
        lines.append(f"  {name} phases (real): {phases}; deferred {s['time']['deferred_seconds']:.1f}s")
    for t in doc["targets"]:
        mark = "ok  " if t["ok"] else "MISS"
        lines.append(f"  [{mark}] {t['scenario']}: {t['target']}: {t['value']} (limit {t['limit']}) {t['note']}")
    return "\n".join(lines)
