from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.state import StateDB, TokenPair

ACCESS = "ACCESS-tok-5f1c0e2b9a"
REFRESH = "REFRESH-tok-77d2c1a0ee"


def _pair(access: str = ACCESS, refresh: str = REFRESH) -> TokenPair:
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_at=datetime(2025, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
        scope="user:profile:read user:clients:read",
    )


def test_pair_repr_hides_tokens_and_normalises_to_utc() -> None:
    pair = _pair()
    for shown in (repr(pair), str(pair), f"{pair}"):
        assert ACCESS not in shown
        assert REFRESH not in shown
        assert "***" in shown
    assert pair.expires_at == datetime(2025, 3, 1, 17, 0, tzinfo=timezone.utc)
    assert pair.expires_at.tzinfo == timezone.utc


def test_pair_refuses_naive_expiry() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TokenPair("a", "b", datetime(2025, 3, 1, 12, 0), "")


def test_expires_within() -> None:
    pair = _pair()  # 17:00 UTC
    assert not pair.expires_within(60, now=datetime(2025, 3, 1, 16, 58, 59, tzinfo=timezone.utc))
    assert pair.expires_within(60, now=datetime(2025, 3, 1, 16, 59, 0, tzinfo=timezone.utc))
    assert pair.expires_within(0, now=datetime(2025, 3, 1, 18, 0, tzinfo=timezone.utc))


def test_roundtrip_overwrite_and_delete(db: StateDB) -> None:
    assert db.tokens.load("freshbooks_acme") is None
    db.tokens.save("freshbooks_acme", _pair())
    assert db.tokens.load("freshbooks_acme") == _pair()
    db.tokens.save("freshbooks_acme", _pair("ACCESS-2", "REFRESH-2"))
    loaded = db.tokens.load("freshbooks_acme")
    assert loaded is not None
    assert (loaded.access_token, loaded.refresh_token) == ("ACCESS-2", "REFRESH-2")
    assert db.tokens.load("freshbooks_other") is None
    assert db.tokens.conn_ids() == ["freshbooks_acme"]
    db.tokens.delete("freshbooks_acme")
    assert db.tokens.load("freshbooks_acme") is None


def test_tokens_never_stored_in_plaintext(db: StateDB) -> None:
    db.tokens.save("freshbooks_acme", _pair())
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM fbmkto_oauth_tokens")).all()
    assert len(rows) == 1
    raw = repr(rows)
    for secret in (ACCESS, REFRESH, "user:clients:read"):
        assert secret not in raw
    if db.dialect == "sqlite":
        # Nothing in the database files either (main file, WAL, shared memory).
        database = db.engine.url.database
        assert database is not None
        for path in Path(database).parent.glob(Path(database).name + "*"):
            content = path.read_bytes()
            assert ACCESS.encode() not in content
            assert REFRESH.encode() not in content


def test_no_key_is_a_config_error_naming_the_fix(db_url: str) -> None:
    keyless = StateDB(db_url)
    with pytest.raises(ConfigError) as err:
        keyless.tokens.save("freshbooks_acme", _pair())
    message = str(err.value)
    assert "no Fernet key" in message
    assert "fernet_key" in message
    assert "Fernet.generate_key()" in message
    with pytest.raises(ConfigError, match="no Fernet key"):
        keyless.tokens.load("anything")
    keyless.tokens.delete("anything")  # needs no key


def test_wrong_key_is_a_config_error_naming_the_fix(db: StateDB, db_url: str) -> None:
    db.tokens.save("freshbooks_acme", _pair())
    other = StateDB(db_url, fernet_key=Fernet.generate_key().decode())
    with pytest.raises(ConfigError) as err:
        other.tokens.load("freshbooks_acme")
    message = str(err.value)
    assert "cannot be decrypted" in message
    assert "fbmkto authorize --conn-id freshbooks_acme" in message
    assert ACCESS not in message


def test_malformed_key_is_a_config_error(db_url: str) -> None:
    with pytest.raises(ConfigError, match="not a valid Fernet key") as err:
        StateDB(db_url, fernet_key="not-a-key").tokens.save("c", _pair())
    assert "not-a-key" not in str(err.value)


def test_multifernet_rotation(db_url: str) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    StateDB(db_url, fernet_key=old).tokens.save("freshbooks_acme", _pair())

    rotated = StateDB(db_url, fernet_key=f"{new}, {old}")
    assert rotated.tokens.load("freshbooks_acme") == _pair()  # decrypts with the old key, re-encrypts with new

    # The old key is no longer needed once the pair was read under the rotated list ...
    assert StateDB(db_url, fernet_key=new).tokens.load("freshbooks_acme") == _pair()
    # ... and new saves are encrypted with the first key only.
    rotated.tokens.save("freshbooks_beta", _pair("A2", "R2"))
    assert StateDB(db_url, fernet_key=new).tokens.load("freshbooks_beta") is not None
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        StateDB(db_url, fernet_key=old).tokens.load("freshbooks_beta")


def test_ciphertext_moved_to_another_connection_is_refused(db: StateDB) -> None:
    db.tokens.save("freshbooks_a", _pair())
    db.tokens.save("freshbooks_b", _pair("other", "other"))
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE fbmkto_oauth_tokens SET ciphertext = "
                "(SELECT ciphertext FROM fbmkto_oauth_tokens WHERE conn_id = 'freshbooks_a') "
                "WHERE conn_id = 'freshbooks_b'"
            )
        )
    with pytest.raises(ConfigError, match="freshbooks_b"):
        db.tokens.load("freshbooks_b")
