"""``python -m airflow_provider_fbmkto.cli`` = ``fbmkto``."""

from __future__ import annotations

from airflow_provider_fbmkto.cli import main

raise SystemExit(main())
