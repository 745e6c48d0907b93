"""The arguments that say where a command's accounts config and state DB are, and reading the config.

The config is ``--config``, else ``$FBMKTO_CONFIG``, else the DAGs folder's file (the rule:
:func:`airflow_provider_fbmkto.bundled.accounts_config_path`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from airflow_provider_fbmkto.bundled import accounts_config_path as _locate
from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID
from airflow_provider_fbmkto.sync.config_schema import CONFIG_ENV, SyncConfig

HELP = (
    "accounts config file (default: $FBMKTO_CONFIG, else fbmkto_accounts.yaml in Airflow's DAGs folder, "
    "else dags/fbmkto_accounts.yaml)"
)
#: Where the CLI looks when Airflow's DAGs folder has no accounts config: the checkout's ``dags``.
CHECKOUT_DAGS = "dags"


def add_config_argument(parser: argparse.ArgumentParser, more_help: str = "") -> None:
    """``--config``: the accounts config file (:func:`load_accounts` reads it)."""
    parser.add_argument("--config", help=f"{HELP}{more_help}")


def add_state_conn_argument(parser: argparse.ArgumentParser, more_help: str = "") -> None:
    """``--state-conn-id``: the Airflow connection of the state DB."""
    parser.add_argument("--state-conn-id", default=DEFAULT_CONN_ID, help=f"connection of the state DB{more_help}")


def accounts_config_path(explicit: str | None) -> tuple[Path, bool]:
    """``(path, named)``: the config file to read, and whether the user named it (``--config`` or the env)."""
    return _locate(explicit, fallback_folder=CHECKOUT_DAGS)


def load_accounts(explicit: str | None, *, required: bool = True) -> SyncConfig | None:
    """The accounts config; ``None`` when it was not named, is absent and ``required`` is false.

    :raises ConfigError: a named (or required) file is missing, or the file is invalid (every error listed).
    """
    from airflow_provider_fbmkto.sync.config import load_config

    path, named = accounts_config_path(explicit)
    if not path.exists():
        if named or required:
            raise ConfigError(f"no accounts config at {path}; pass --config or set {CONFIG_ENV}")
        return None
    return load_config(path)
