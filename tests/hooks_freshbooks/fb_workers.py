"""Process entry points for the multi-process token test (spawned; importable by name)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def iterate_clients(env: dict[str, str], barrier: Any, out_dir: str, index: int) -> None:
    """Set up a hook, wait for all workers, then page clients; write ``ok <count>`` or the error."""
    os.environ.update(env)
    from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook

    hook = FreshBooksHook()
    hook.state.tokens.load("freshbooks_default")  # warm imports and the DB engine before the race
    barrier.wait(120)
    try:
        result = f"ok {sum(1 for _ in hook.iter_clients())}"
    except Exception as exc:
        result = f"error {type(exc).__name__}: {exc}"
    Path(out_dir, f"{index}.txt").write_text(result)
