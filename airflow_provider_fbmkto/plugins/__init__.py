"""Airflow plugin: FastAPI apps served by the api-server under ``/fbmkto`` (webhook receiver, status page)."""
