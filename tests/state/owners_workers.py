"""Process entry point of the concurrent ownership test (spawned; must be importable by name)."""

from __future__ import annotations

from airflow_provider_fbmkto.state import StateDB


def claim_all(url: str, account: str, emails: list[str]) -> dict[str, str]:
    """Claim every e-mail for ``account`` one batch at a time (as the loader does); return what it was told."""
    db = StateDB(url)
    seen: dict[str, str] = {}
    for i in range(0, len(emails), 7):
        seen.update(db.owners.claim("mkto.example:443", "lead", account, emails[i : i + 7], run_id=f"run-{account}"))
    return seen
