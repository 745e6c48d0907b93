"""Operators of the FreshBooks → Marketo sync: thin glue over :mod:`airflow_provider_fbmkto.pipeline`."""
