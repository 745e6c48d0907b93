"""Pure domain: records, mapping, matching, payment health, account config.

Nothing here imports Airflow, HTTP libraries or reads the clock; time is always a parameter.

Modules (public API first):

* ``records``    — typed FreshBooks records (Client, Invoice, Payment, Money).
* ``window``     — ``Window`` (data interval), account-zone dates, FreshBooks day searches, Eastern wall time.
* ``matching``   — client → company (rules, e-mail domain, free mail), company keys, cross-account conflicts.
* ``health``     — ``PaymentStatus``, overdue moments, ``summarize`` (terms, balance, counts, days to pay).
* ``mapping``    — planned Marketo writes: activities, leads, companies, list membership (types in ``plan``,
  activity rules in ``activities``).
* ``keys``       — ledger idempotency keys and the canonical payload hash.
* ``reconcile``  — FreshBooks clients vs Marketo leads; corrections.
* ``config``     — ``fbmkto_accounts.yaml``: schema (``config_schema``), loader and checks (``config_parse``,
  ``config_fields``, ``config_reader``, ``config_checks``), schedule syntax (``cron``).
"""
