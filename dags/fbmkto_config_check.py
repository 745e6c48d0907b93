"""Shows problems in ``fbmkto_accounts.yaml`` as a DAG import error, naming file, account and field.

The accounts that are fine still get their DAGs from ``freshbooks_to_marketo.py``; this file defines no DAG.
It only reads the config: building the DAGs here too would register them twice (Airflow 3 auto-registers
every DAG created in a ``with DAG(...)`` block), so each would be reported as a duplicate of this file.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_provider_fbmkto.sync.config import load_config_collecting
from airflow_provider_fbmkto.sync.config_schema import ConfigProblems, config_path

_path = config_path(Path(__file__).parent, os.environ)
if _path.exists():
    _accounts, _errors = load_config_collecting(_path)
    if _errors:
        raise ConfigProblems(str(_path), tuple(_errors))
