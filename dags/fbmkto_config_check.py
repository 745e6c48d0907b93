"""Shows problems in ``fbmkto_accounts.yaml`` as a DAG import error, naming file, account and field.

The accounts that are fine still get their DAGs from ``freshbooks_to_marketo.py``; this file defines no DAG.
"""

from __future__ import annotations

from airflow_provider_fbmkto.operators.factory import build_dags
from airflow_provider_fbmkto.sync.config_schema import ConfigProblems

_dags, _errors = build_dags(__file__)
if _errors:
    raise ConfigProblems(_errors[0].source, tuple(_errors))
