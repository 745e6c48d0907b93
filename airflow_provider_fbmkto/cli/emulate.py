"""``fbmkto emulate freshbooks|marketo|both --port N [--seed S]``: serve the bundled emulators for people."""

from __future__ import annotations

import argparse
import threading
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "emulate",
        help="serve the FreshBooks and/or Marketo emulator on 127.0.0.1 (for trying things out and for tests)",
        description="Serve strict local emulators of the FreshBooks and Marketo APIs. With 'both', FreshBooks "
        "listens on --port and Marketo on --port + 1. Each prints its AIRFLOW_CONN_* value.",
    )
    p.add_argument("api", choices=("freshbooks", "marketo", "both"), help="which API to emulate")
    p.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--seed", default=None, help="seed FreshBooks with deterministic data ('demo' or any string/int)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
    from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

    emulators: list[Any] = []
    if args.api in ("freshbooks", "both"):
        emulators.append(FreshBooksEmulator(host=args.host, port=args.port, seed=args.seed))
    if args.api in ("marketo", "both"):
        emulators.append(MarketoEmulator(host=args.host, port=args.port + 1 if args.api == "both" else args.port))
    for emu in emulators:
        emu.start()
        conn_type = "freshbooks" if isinstance(emu, FreshBooksEmulator) else "marketo"
        print(f"{conn_type} emulator on {emu.url}")
        print(f"  AIRFLOW_CONN_{conn_type.upper()}_DEFAULT='{emu.conn_json()}'", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for emu in emulators:
            emu.stop()
    return 0
