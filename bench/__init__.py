"""Throughput, API-call efficiency and memory benchmark of the sync, against the emulators.

``python -m bench`` (or ``make bench``) seeds the FreshBooks emulator at scale (default about 100k records),
runs the provider's real operators -- ``execute()`` of each task of the DAG, with the context Airflow gives
it, in a forked task process as Airflow's executors run tasks -- and prints one JSON document (plus a short
table on stderr) with records per kind, calls against their minimum, wall time per phase against Marketo's
rate-limit floor, peak RSS of each task process and records per second.

Layout: :mod:`bench.world` (emulators, seed, config, connections), :mod:`bench.worker` (the task process
server), :mod:`bench.runner` (one DAG run, task by task), :mod:`bench.measure` (call accounting),
:mod:`bench.scenarios` (full load, steady state, backfill), :mod:`bench.report` (JSON and table).
"""
