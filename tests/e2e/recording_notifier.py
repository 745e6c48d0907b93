"""A notifier of the test suite: records what Airflow handed it, as JSON lines in a file (runs in task processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier


class RecordingNotifier(BaseNotifier):
    """Appends ``{"dag_id", "run_id", "task_id", "tag"}`` to ``path`` each time it is called."""

    template_fields = ("tag",)

    def __init__(self, path: str, tag: str = "") -> None:
        super().__init__()
        self.path = path
        self.tag = tag

    def notify(self, context: Any) -> None:
        run, ti = context.get("dag_run"), context.get("ti")
        entry = {
            "dag_id": getattr(run, "dag_id", None),
            "run_id": getattr(run, "run_id", None),
            "task_id": getattr(ti, "task_id", None),
            "tag": self.tag,
        }
        with Path(self.path).open("a") as out:
            out.write(json.dumps(entry) + "\n")
