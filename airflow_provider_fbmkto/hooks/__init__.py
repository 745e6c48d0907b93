"""Hooks: typed clients of FreshBooks and Marketo built on the one HTTP layer (:mod:`airflow_provider_fbmkto.http`)."""
