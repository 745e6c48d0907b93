"""Parsing ``alerts:`` of one account (machinery of :mod:`airflow_provider_fbmkto.sync.config`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from airflow_provider_fbmkto.sync.config_reader import MISSING, Path_, Reader, kind
from airflow_provider_fbmkto.sync.config_schema import AlertsConfig, NotifierSpec

__all__ = ["ALERTS_SCHEMA", "parse_alerts"]

ALERTS_SCHEMA: Final[dict[str, object]] = {
    "max_skipped": None,
    "max_failed": None,
    "notify": [dict.fromkeys(("classpath", "kwargs"))],
}
_CLASSPATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_EXAMPLE = "{classpath: airflow.providers.slack.notifications.slack.SlackNotifier, kwargs: {channel: '#billing'}}"


def _notifier(r: Reader, path: Path_, raw: object) -> NotifierSpec | None:
    if not isinstance(raw, Mapping):
        r.error(path, f"must be a mapping like {_EXAMPLE}, got {kind(raw)}")
        return None
    classpath = r.text((*path, "classpath"), required="airflow.providers.smtp.notifications.smtp.SmtpNotifier")
    if classpath is not None and not _CLASSPATH.match(classpath):
        r.error((*path, "classpath"), f"{classpath!r} is not a dotted class path like 'package.module.ClassName'")
        return None
    kwargs = r.section((*path, "kwargs"))
    if any(not isinstance(k, str) for k in kwargs):
        r.error((*path, "kwargs"), "keys must be argument names (text)")
        return None
    if classpath is None:
        return None
    return NotifierSpec(classpath, tuple(sorted((str(k), v) for k, v in kwargs.items())))


def parse_alerts(r: Reader) -> AlertsConfig:
    """``alerts:`` of the merged account; problems go to ``r.errors``."""
    r.section(("alerts",))
    defaults = AlertsConfig()
    raw = r.get(("alerts", "notify"))
    notify: list[NotifierSpec] = []
    if raw is not MISSING and not isinstance(raw, list):
        r.error(("alerts", "notify"), f"must be a list of notifiers (lines starting with '-'), got {kind(raw)}")
    elif isinstance(raw, list):
        notify = [n for i, item in enumerate(raw) if (n := _notifier(r, ("alerts", "notify", i), item))]
    return AlertsConfig(
        max_skipped=r.integer(("alerts", "max_skipped"), defaults.max_skipped, 0) or 0,
        max_failed=r.integer(("alerts", "max_failed"), defaults.max_failed, 0) or 0,
        notify=tuple(notify),
    )
