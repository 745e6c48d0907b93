"""FreshBooks → Marketo: one DAG per account in ``fbmkto_accounts.yaml`` (beside this file, or $FBMKTO_CONFIG).

Accounts with a configuration error get no DAG; ``fbmkto_config_check.py`` reports them as an import error.
"""

from __future__ import annotations

from airflow_provider_fbmkto.dag_factory import build_dags

_dags, _errors = build_dags(__file__)
globals().update(_dags)
