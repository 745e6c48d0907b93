"""Serve one bundled emulator on a container interface (the ``emulators`` profile of docker-compose.yaml).

``fbmkto emulate`` serves on loopback, which other containers cannot reach; this serves the same emulator app
with uvicorn on ``--host`` (default ``0.0.0.0``) in the foreground, so ``fb-emulator:8080`` and
``mkto-emulator:8081`` answer on the compose network. The emulators are test doubles with made-up credentials:
never publish their ports beyond the host.

    python deploy/emulator.py freshbooks --port 8080 --seed demo
    python deploy/emulator.py marketo --port 8081 --list 1001="FB Paid" --list 1002="FB Overdue"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def _list_spec(text: str) -> tuple[int, str]:
    """``1001=FB Paid`` -> ``(1001, "FB Paid")``."""
    ident, sep, name = text.partition("=")
    if not sep or not ident.strip().isdigit() or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not ID=NAME (e.g. 1001='FB Paid')")
    return int(ident), name.strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="serve a FreshBooks or Marketo emulator on a container interface")
    parser.add_argument("api", choices=("freshbooks", "marketo"))
    parser.add_argument("--host", default="0.0.0.0", help="interface to bind (default all: inside a container)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", default=None, help="FreshBooks: deterministic data ('demo' or any string)")
    parser.add_argument(
        "--list", dest="lists", action="append", type=_list_spec, default=[], help="Marketo: static list ID=NAME"
    )
    return parser


def build_app(args: argparse.Namespace) -> Any:
    """The emulator's ASGI app (the emulator object stays alive through the app's references to it)."""
    if args.api == "freshbooks":
        from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator

        return FreshBooksEmulator(seed=args.seed).app
    from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

    return MarketoEmulator(lists=dict(args.lists) or None).app


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    app = build_app(args)
    print(f"{args.api} emulator listening on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, lifespan="off", log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
