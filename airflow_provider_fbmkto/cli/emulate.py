"""``fbmkto emulate freshbooks|marketo|both --port N [--seed S]``: serve the bundled emulators for people."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path
from typing import Any

#: The static lists the example accounts config names (``segments: {paid_list_id: 1001, overdue_list_id: 1002}``).
EXAMPLE_LISTS = {1001: "FB Paid", 1002: "FB Overdue"}

CONTROL_HELP = """\
control endpoints users need (plain HTTP, no auth; every answer is JSON):
  FreshBooks  POST /_emulator/code             a one-time OAuth code, as if the user clicked Allow:
                                               fbmkto authorize --conn-id freshbooks_acme --code CODE
              POST /_emulator/records/clients  add a record (also invoices, payments); PATCH/DELETE .../ID
              POST /_emulator/invoices/ID/send mark an invoice sent (fires invoice.sendByEmail webhooks)
              POST /_emulator/seed             {"seed": "demo"}: load a deterministic demo business
              GET  /_emulator/calls            the API calls made so far
  Marketo     GET  /_emulator/lists            static lists; POST {"name": "FB Paid", "id": 1001} adds one
              GET  /_emulator/lists/ID         a list's member lead ids
              GET  /_emulator/leads            leads (also /companies, /activities?leadId=ID, /activity-types)
              GET  /_emulator/usage            calls counted today
  both        POST /_emulator/faults           inject a fault; DELETE clears them; POST /_emulator/reset
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "emulate",
        help="serve the FreshBooks and/or Marketo emulator on 127.0.0.1 (for trying things out and for tests)",
        description="Serve strict local emulators of the FreshBooks and Marketo APIs. With 'both', FreshBooks "
        "listens on --port and Marketo on --port + 1 (with --port 0, each on any free port). Marketo starts "
        "with the static lists the example accounts config names (1001 'FB Paid', 1002 'FB Overdue'). Each "
        "prints its AIRFLOW_CONN_* value; --env-file writes them as shell exports to source.",
        epilog=CONTROL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("api", choices=("freshbooks", "marketo", "both"), help="which API to emulate")
    p.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--seed", default=None, help="seed FreshBooks with deterministic data ('demo' or any string/int)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    p.add_argument(
        "--freshbooks-conn-id",
        default="freshbooks_acme",
        help="connection id of the printed FreshBooks connection (default freshbooks_acme, the example config's)",
    )
    p.add_argument(
        "--marketo-conn-id", default="marketo_default", help="connection id of the printed Marketo connection"
    )
    p.add_argument(
        "--no-lists", action="store_true", help="start Marketo without the example config's static lists 1001/1002"
    )
    p.add_argument(
        "--env-file",
        type=Path,
        help="once serving, write `export AIRFLOW_CONN_…=…` lines (and FRESHBOOKS_EMULATOR / MARKETO_EMULATOR, "
        "the base URLs) to this file",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
    from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

    emulators: list[tuple[str, str, Any]] = []
    if args.api in ("freshbooks", "both"):
        fb = FreshBooksEmulator(host=args.host, port=args.port, seed=args.seed)
        emulators.append(("freshbooks", args.freshbooks_conn_id, fb))
    if args.api in ("marketo", "both"):
        port = args.port + 1 if args.api == "both" and args.port else args.port
        mkto = MarketoEmulator(host=args.host, port=port, lists=None if args.no_lists else EXAMPLE_LISTS)
        emulators.append(("marketo", args.marketo_conn_id, mkto))
    exports: list[str] = []
    try:
        for api, conn_id, emu in emulators:
            emu.start()
            print(f"{api} emulator on {emu.url}")
            line = f"AIRFLOW_CONN_{conn_id.upper()}='{emu.conn_json()}'"
            print(f"  {line}", flush=True)
            exports += [f"export {line}", f"export {api.upper()}_EMULATOR={emu.url}"]
        if args.env_file:
            # Written whole under a temporary name, then renamed: a reader never sees half a file.
            partial = args.env_file.with_name(args.env_file.name + ".partial")
            partial.write_text("\n".join(exports) + "\n")
            os.replace(partial, args.env_file)
            print(f"connections written to {args.env_file} (source it)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for _, _, emu in emulators:
            emu.stop()
    return 0
