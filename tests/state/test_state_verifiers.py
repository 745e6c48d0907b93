"""Webhook verifiers (``StateDB.verifiers``): stored unconfirmed and encrypted, confirmed, forgotten; a database
whose ``fbmkto_webhook_verifiers`` table the receiver created before the store moved into ``state`` keeps it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from airflow_provider_fbmkto.state import StateDB


def test_a_verifier_authenticates_only_once_confirmed_and_is_encrypted(db: StateDB) -> None:
    db.verifiers.store("acme", "7", "s3cret")
    assert db.verifiers.pending("7") == ("acme", "s3cret")
    assert db.verifiers.confirmed("acme") == []
    db.verifiers.confirm("acme", "7")
    assert db.verifiers.confirmed("acme") == ["s3cret"]
    with db.read_tx() as conn:
        (stored,) = conn.execute(text("SELECT ciphertext FROM fbmkto_webhook_verifiers")).scalars()
    assert "s3cret" not in stored
    db.verifiers.store("acme", "7", "newer")  # a new verify request replaces it, unconfirmed
    assert db.verifiers.confirmed("acme") == []
    db.verifiers.forget("7")
    assert db.verifiers.pending("7") is None


def test_a_database_without_the_table_gets_it_on_first_use_and_rows_survive(tmp_path: Path, key: str) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    before = StateDB(url, fernet_key=key)
    before.create_all()
    with before.write_tx() as conn:  # a state DB from before the receiver ever stored a verifier
        conn.execute(text("DROP TABLE fbmkto_webhook_verifiers"))
    before.dispose()
    now = StateDB(url, fernet_key=key)
    now.verifiers.store("acme", "7", "s3cret")
    now.verifiers.confirm("acme", "7")
    assert "fbmkto_webhook_verifiers" in inspect(now.engine).get_table_names()
    now.dispose()
    assert StateDB(url, fernet_key=key).verifiers.confirmed("acme") == ["s3cret"]
