"""The ``fbmkto`` command line (also ``airflow fbmkto …`` through the provider's ``cli`` entry).

Each area registers its own subcommands in a module of this package (``emulate``, ``freshbooks``,
``marketo``, ``pipeline``); a module is imported only to build the parser, and each command imports its
heavy dependencies (Airflow, hooks) when it runs, so ``fbmkto --version`` stays fast.

Commands exit 0 on success, 1 on a failure they explain (one line naming the fix, no traceback), 2 on
bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from airflow_provider_fbmkto import __version__
from airflow_provider_fbmkto.exceptions import FbmktoError

#: Modules that each define ``register(subparsers) -> None``; every subcommand sets ``func(args) -> int``.
COMMAND_MODULES = ("emulate", "freshbooks", "marketo", "pipeline", "docs", "owners")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fbmkto", description="FreshBooks to Marketo sync for Apache Airflow")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"airflow_provider_fbmkto.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"airflow_provider_fbmkto.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Run as Airflow's own CLI does, so connections stored in the metadata DB are visible (tasks read them
    # through the execution API instead; this only affects the `fbmkto` commands).
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except FbmktoError as exc:
        print(f"fbmkto {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())


def get_airflow_cli_commands() -> list[Any]:
    """``airflow fbmkto …``: the same commands as ``fbmkto …``, registered through provider info ``cli``."""
    from airflow.cli.cli_config import ActionCommand, Arg

    def run(args: argparse.Namespace) -> None:
        code = main(args.fbmkto_args)
        if code:
            raise SystemExit(code)

    return [
        ActionCommand(
            name="fbmkto",
            help="FreshBooks to Marketo sync: authorize, setup-marketo, webhooks, ledger, check, emulate, demo",
            func=run,
            args=(Arg(("fbmkto_args",), help="an fbmkto command and its options", nargs=argparse.REMAINDER),),  # type: ignore[no-untyped-call]
        )
    ]
