"""``python -m bench [--scale 100k|1m|N] [--time-scale F] …``: run the scenarios, print JSON, table on stderr."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

SCENARIOS = ("full_load", "steady_state", "backfill")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the FreshBooks → Marketo sync against the emulators: calls vs minimum, wall time vs "
        "Marketo's rate-limit floor, peak RSS of each task process. JSON on stdout (and --output), a table on stderr.",
    )
    p.add_argument("--scale", default="100k", help="FreshBooks records to seed: 100k (default), 1m, or a number")
    p.add_argument(
        "--time-scale",
        type=float,
        default=0.25,
        help="real seconds per emulated second: Marketo's 20 s window lasts 20xthis (default 0.25: 5 s)",
    )
    p.add_argument(
        "--marketo-latency",
        type=float,
        default=0.5,
        help="emulated seconds each Marketo REST call takes to answer (default 0.5; scaled like the window)",
    )
    p.add_argument(
        "--calls-per-window",
        type=int,
        help="the Marketo connection's calls_per_window extra (default: the hook's default, 97 of Marketo's 100)",
    )
    p.add_argument("--backfill-days", type=int, default=7, help="daily runs in the backfill scenario (default 7)")
    p.add_argument("--months", type=int, default=24, help="months of invoice history in the seed (default 24)")
    p.add_argument(
        "--payment-touches-invoice",
        choices=("yes", "no"),
        default="yes",
        help="whether the FreshBooks emulator bumps an invoice's `updated` when a payment of it changes "
        "(FreshBooks does not document it; 'no' measures the extract's by-id refresh of those invoices)",
    )
    p.add_argument("--steady-fraction", type=float, default=0.01, help="share changed before the steady run (0.01)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    p.add_argument("--output", type=Path, help="also write the JSON document to this file")
    p.add_argument(
        "--workdir", type=Path, help="where Airflow homes, state DBs and worker logs go (default: a temp dir)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (worker logs, state DBs)")
    args = p.parse_args(argv)
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if "steady_state" in wanted and "full_load" not in wanted:
        p.error("steady_state runs after full_load; add full_load")
    args.scenario_list = wanted
    if args.time_scale <= 0 or args.marketo_latency < 0:
        p.error("--time-scale must be positive and --marketo-latency not negative")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import report, scenarios
    from bench.world import MAX_CONCURRENCY, RATE_LIMIT, WINDOW_SECONDS, Settings, build_world, parse_scale

    settings = Settings(
        records=parse_scale(args.scale),
        time_scale=args.time_scale,
        months=args.months,
        backfill_days=args.backfill_days,
        steady_fraction=args.steady_fraction,
        calls_per_window=args.calls_per_window,
        payment_touches_invoice=args.payment_touches_invoice == "yes",
    )
    started = time.perf_counter()
    print(f"bench: seeding about {settings.records:,} FreshBooks records …", file=sys.stderr, flush=True)
    world = build_world(settings, args.workdir)
    world.mk.app.latency = args.marketo_latency * settings.time_scale
    seeded = {**world.seeded, "total": sum(world.seeded.values())}
    results: dict[str, Any] = {}
    try:
        order = [s for s in ("backfill", "full_load", "steady_state") if s in args.scenario_list]
        for name in order:
            print(f"bench: scenario {name} …", file=sys.stderr, flush=True)
            scenario = getattr(scenarios, name)(world)
            results[name] = scenarios.summarize(scenario, world)
    finally:
        world.close()
        if not args.keep and args.workdir is None:
            shutil.rmtree(world.workdir, ignore_errors=True)
    doc: dict[str, Any] = {
        "benchmark": "airflow-provider-fbmkto sync",
        "machine": report.machine(),
        "settings": {
            "records": settings.records,
            "clients": settings.clients,
            "months": settings.months,
            "time_scale": settings.time_scale,
            "window_seconds": settings.window_seconds,
            "marketo_latency_emulated_seconds": args.marketo_latency,
            "calls_per_window": settings.calls_per_window,
            "backfill_days": settings.backfill_days,
            "steady_fraction": settings.steady_fraction,
            "seed": settings.seed,
            "payment_touches_invoice": settings.payment_touches_invoice,
        },
        "limits": {
            "marketo_rate_limit": RATE_LIMIT,
            "marketo_window_emulated_seconds": WINDOW_SECONDS,
            "marketo_max_concurrency": MAX_CONCURRENCY,
            "marketo_batch": 300,
            "freshbooks_page": 100,
        },
        "seeded": seeded,
        "scenarios": {name: results[name] for name in SCENARIOS if name in results},
        "bench_seconds": round(time.perf_counter() - started, 1),
        "workdir": str(world.workdir) if (args.keep or args.workdir) else None,
    }
    doc["targets"] = report.targets(doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    from bench.report import table

    args = parse_args(argv)
    doc = run(args)
    text = json.dumps(doc, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    print(text)
    print(table(doc), file=sys.stderr)
    return 0
