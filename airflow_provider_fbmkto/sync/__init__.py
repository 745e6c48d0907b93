"""Pure domain: records, mapping, matching, payment health, account config.

Nothing here imports Airflow, HTTP libraries or reads the clock; time is always a parameter.
"""
