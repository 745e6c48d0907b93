"""The DAG files and the example accounts config the package ships (``fbmkto init-dags`` copies them), and
where Airflow's DAGs folder, and so the accounts config, is for code outside the DAG file.

In a built wheel they are package data under ``airflow_provider_fbmkto/example_dags/`` (pyproject's
``force-include`` puts the repository's ``dags/`` files there); in a source checkout they are read from
``dags/`` itself, so there is one copy of each file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_fbmkto.sync.config_schema import DEFAULT_CONFIG_NAME, locate_config

#: The DAG files a user's DAGs folder needs (the sync DAGs, and the file that shows config errors).
DAG_FILES = ("freshbooks_to_marketo.py", "fbmkto_config_check.py")
EXAMPLE_CONFIG = "fbmkto_accounts.example.yaml"
_PACKAGED = Path(__file__).resolve().parent / "example_dags"
_CHECKOUT = Path(__file__).resolve().parents[1] / "dags"


def bundled_dags_dir() -> Path:
    """The folder holding :data:`DAG_FILES` and :data:`EXAMPLE_CONFIG` (the wheel's, else the checkout's)."""
    for folder in (_PACKAGED, _CHECKOUT):
        if all((folder / name).is_file() for name in (*DAG_FILES, EXAMPLE_CONFIG)):
            return folder
    raise FileNotFoundError(
        f"the package's DAG files are missing (looked in {_PACKAGED} and {_CHECKOUT}); "
        "reinstall airflow-provider-fbmkto"
    )


def airflow_dags_folder(fallback: str = ".") -> Path:
    """Airflow's ``[core] dags_folder`` (where the DAG file, and so the accounts config, is); ``fallback`` if unset."""
    try:
        from airflow.configuration import conf
    except ImportError:  # pragma: no cover - Airflow is a dependency
        return Path(fallback)
    return Path(conf.get("core", "dags_folder", fallback="") or fallback)


def accounts_config_path(
    explicit: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    dags_folder: str | Path | None = None,
    fallback_folder: str | Path | None = None,
) -> tuple[Path, bool]:
    """``(path, named)`` of the accounts config outside the DAG file: the CLI, the status page, the receiver.

    The rule is :func:`~airflow_provider_fbmkto.sync.config_schema.locate_config`'s (``explicit``, else
    ``$FBMKTO_CONFIG``, else the DAGs folder's ``fbmkto_accounts.yaml``) over Airflow's DAGs folder.

    :param environ: default ``os.environ``.
    :param dags_folder: default :func:`airflow_dags_folder` (``fallback_folder`` if Airflow names none, else ``.``).
    :param fallback_folder: where to look when the DAGs folder has no config file.
    """
    if dags_folder is None:
        dags_folder = airflow_dags_folder(str(fallback_folder or "."))
    return locate_config(
        dags_folder, os.environ if environ is None else environ, explicit=explicit, fallback_folder=fallback_folder
    )


@dataclass(frozen=True)
class Copied:
    """What :func:`init_dags` did: files written, and the config left alone because it already existed."""

    written: tuple[Path, ...]
    kept: tuple[Path, ...]


def init_dags(target: Path) -> Copied:
    """Copy the DAG files into ``target`` (created if absent) and the example config as ``fbmkto_accounts.yaml``.

    The DAG files are always (re)written, so re-running after an upgrade updates them; an existing
    ``fbmkto_accounts.yaml`` is never overwritten (it holds the user's accounts).
    """
    source = bundled_dags_dir()
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    kept: list[Path] = []
    for name in DAG_FILES:
        shutil.copyfile(source / name, target / name)
        written.append(target / name)
    config = target / DEFAULT_CONFIG_NAME
    if config.exists():
        kept.append(config)
    else:
        shutil.copyfile(source / EXAMPLE_CONFIG, config)
        written.append(config)
    return Copied(tuple(written), tuple(kept))
