"""The sync steps (extract, plan, load, reconcile, report) as plain functions over hooks, state and sync.

Operators call these and stay thin; the benchmark and tests call the operators, so every path is the same.
Nothing here imports Airflow's task machinery: a step takes hooks, the state DB and a :class:`RunContext`.
"""
