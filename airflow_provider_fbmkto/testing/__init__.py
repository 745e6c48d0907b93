"""Strict local emulators of the FreshBooks and Marketo APIs, for tests, the demo and the benchmark.

Like moto for AWS, they are usable from users' own tests::

    from airflow_provider_fbmkto.testing import FreshBooksEmulator, MarketoEmulator

    with MarketoEmulator() as mkto:
        os.environ["AIRFLOW_CONN_MARKETO_DEFAULT"] = mkto.conn_json()
        ...
"""

from __future__ import annotations

from airflow_provider_fbmkto.testing.freshbooks import FreshBooksEmulator
from airflow_provider_fbmkto.testing.marketo import MarketoEmulator

__all__ = ["FreshBooksEmulator", "MarketoEmulator"]
