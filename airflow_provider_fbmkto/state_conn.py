"""The state DB's default Airflow connection id, importable without loading the state package.

``state.db`` re-exports it as ``DEFAULT_CONN_ID``; hooks, sensors, triggers, operators, plugins and the CLI's
argument parsers take their default from here, so building a parser or importing a hook does not import
SQLAlchemy.
"""

from __future__ import annotations

DEFAULT_CONN_ID = "fbmkto_state"
