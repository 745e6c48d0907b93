"""Encrypted OAuth token pairs and the cross-process refresh lock.

FreshBooks refresh tokens are single-use and rotate, and Airflow 3 tasks cannot write connections, so the
current pair lives here: Fernet-encrypted as a whole (never plaintext), and refreshed under a lease so that two
workers never spend the same refresh token.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select, update

from airflow_provider_fbmkto.exceptions import ConfigError, FbmktoError
from airflow_provider_fbmkto.state._util import as_utc, utcnow
from airflow_provider_fbmkto.state.models import OAuthToken, TokenLease

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB

log = logging.getLogger(__name__)

_GENERATE_HINT = (
    "generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)
NO_KEY_MESSAGE = (
    "no Fernet key for the fbmkto state DB: set [core] fernet_key or the `fernet_key` extra of connection "
    f"fbmkto_state ({_GENERATE_HINT})"
)

# In-process locks per (database, conn_id): threads queue here instead of polling the database.
_thread_locks: dict[tuple[str, str], threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _reset_thread_locks_in_child() -> None:
    """A lock held by another thread at fork time would stay held forever in the child."""
    global _thread_locks_guard
    _thread_locks_guard = threading.Lock()
    _thread_locks.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_thread_locks_in_child)


class TokenLockTimeout(FbmktoError):
    """The refresh lock of a connection could not be acquired in time."""


@dataclass(frozen=True)
class TokenPair:
    """An OAuth access/refresh token pair. Its repr never shows the tokens.

    :param access_token: bearer token for API calls.
    :param refresh_token: single-use token to obtain the next pair.
    :param expires_at: when ``access_token`` expires (aware; normalised to UTC).
    :param scope: space-separated granted scopes.
    """

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    scope: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "expires_at", as_utc(self.expires_at, "TokenPair.expires_at"))

    def __repr__(self) -> str:
        return (
            f"TokenPair(access_token='***', refresh_token='***', expires_at={self.expires_at.isoformat()!r}, "
            f"scope={self.scope!r})"
        )

    __str__ = __repr__

    def expires_within(self, seconds: float, *, now: datetime | None = None) -> bool:
        """Whether the access token expires within ``seconds`` of ``now`` (already expired counts).

        :param seconds: safety margin.
        :param now: the current time (aware); defaults to the clock.
        """
        current = as_utc(now, "now") if now is not None else utcnow()
        return self.expires_at - current <= timedelta(seconds=seconds)


def _thread_lock(db_key: str, conn_id: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault((db_key, conn_id), threading.Lock())


def fernet_keys(configured: str | None) -> list[Fernet]:
    """The state DB's Fernet keys, from a comma-separated list (the first encrypts, all decrypt).

    :raises ConfigError: no key, or one that is not a Fernet key (named by its position).
    """
    raw = [k.strip() for k in (configured or "").split(",") if k.strip()]
    if not raw:
        raise ConfigError(NO_KEY_MESSAGE)
    fernets = []
    for position, key in enumerate(raw, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"Fernet key #{position} configured for the fbmkto state DB is not a valid Fernet key "
                f"(32 url-safe base64-encoded bytes); {_GENERATE_HINT}"
            ) from err
    return fernets


class TokenStore:
    """Token pairs per connection id, encrypted with the state DB's Fernet key (MultiFernet for rotation)."""

    def __init__(self, db: StateDB) -> None:
        self._db = db
        self._fernets: list[Fernet] | None = None

    # --------------------------------------------------------------------------------------------- crypto

    def _keys(self) -> list[Fernet]:
        if self._fernets is None:
            self._fernets = fernet_keys(self._db.fernet_key)
        return self._fernets

    def _encrypt(self, conn_id: str, pair: TokenPair) -> str:
        document = {
            "conn_id": conn_id,
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "expires_at": pair.expires_at.isoformat(),
            "scope": pair.scope,
        }
        return MultiFernet(self._keys()).encrypt(json.dumps(document).encode()).decode()

    def _decrypt(self, conn_id: str, ciphertext: str) -> tuple[TokenPair, bool]:
        """Return the pair and whether it was encrypted with an older (non-primary) key."""
        fernets = self._keys()
        token = ciphertext.encode()
        stale = False
        try:
            plain = fernets[0].decrypt(token)
        except InvalidToken:
            try:
                plain = MultiFernet(fernets).decrypt(token)
                stale = True
            except InvalidToken:
                raise ConfigError(
                    f"stored tokens for {conn_id} cannot be decrypted with the configured Fernet key; restore the "
                    f"key or re-run fbmkto authorize --conn-id {conn_id}"
                ) from None
        try:
            document = json.loads(plain)
            if document.get("conn_id", conn_id) != conn_id:
                raise ValueError("conn_id mismatch")
            pair = TokenPair(
                access_token=document["access_token"],
                refresh_token=document["refresh_token"],
                expires_at=datetime.fromisoformat(document["expires_at"]),
                scope=document.get("scope", ""),
            )
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"stored tokens for {conn_id} are corrupt; re-run fbmkto authorize --conn-id {conn_id}"
            ) from None
        return pair, stale

    # ---------------------------------------------------------------------------------------------- store

    def load(self, conn_id: str) -> TokenPair | None:
        """The stored pair of ``conn_id``, or ``None`` if it was never authorized.

        A pair encrypted with an older key of a rotated key list is re-encrypted with the first key.

        :raises ConfigError: no key configured, or the stored pair cannot be decrypted with it.
        """
        self._keys()  # a missing or malformed key is an error even before anything was stored
        with self._db.read_tx() as conn:
            ciphertext = conn.execute(
                select(OAuthToken.ciphertext).where(OAuthToken.conn_id == conn_id)
            ).scalar_one_or_none()
        if ciphertext is None:
            return None
        pair, stale = self._decrypt(conn_id, ciphertext)
        if stale:
            with self._db.write_tx() as conn:
                conn.execute(
                    update(OAuthToken)
                    .where(OAuthToken.conn_id == conn_id, OAuthToken.ciphertext == ciphertext)
                    .values(ciphertext=self._encrypt(conn_id, pair), updated_at=utcnow())
                )
            log.info("re-encrypted stored tokens of %s with the current Fernet key", conn_id)
        return pair

    def save(self, conn_id: str, pair: TokenPair) -> None:
        """Store ``pair`` as the current pair of ``conn_id`` (encrypted), replacing any previous one."""
        ciphertext = self._encrypt(conn_id, pair)
        stmt = self._db.insert(OAuthToken).values(
            conn_id=conn_id, ciphertext=ciphertext, updated_at=utcnow(), refused=None
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[OAuthToken.conn_id],
            set_={"ciphertext": stmt.excluded.ciphertext, "updated_at": stmt.excluded.updated_at, "refused": None},
        )
        with self._db.write_tx() as conn:
            conn.execute(stmt)

    def mark_refused(self, conn_id: str, reason: str) -> None:
        """Remember that FreshBooks refused the stored refresh token (cleared by the next :meth:`save`)."""
        with self._db.write_tx() as conn:
            conn.execute(update(OAuthToken).where(OAuthToken.conn_id == conn_id).values(refused=reason[:500]))

    def refused(self, conn_id: str) -> str | None:
        """Why FreshBooks refused the stored refresh token of ``conn_id``, if it did (no key needed)."""
        with self._db.read_tx() as conn:
            reason: str | None = conn.execute(
                select(OAuthToken.refused).where(OAuthToken.conn_id == conn_id)
            ).scalar_one_or_none()
        return reason

    def delete(self, conn_id: str) -> None:
        """Forget the pair of ``conn_id`` (no key needed)."""
        with self._db.write_tx() as conn:
            conn.execute(delete(OAuthToken).where(OAuthToken.conn_id == conn_id))

    def conn_ids(self) -> list[str]:
        """Connection ids that have a stored pair."""
        with self._db.read_tx() as conn:
            return list(conn.execute(select(OAuthToken.conn_id).order_by(OAuthToken.conn_id)).scalars())

    # ---------------------------------------------------------------------------------------------- lock

    def _try_acquire(self, conn_id: str, holder: str, lease_seconds: float) -> bool:
        now = utcnow()
        stmt = self._db.insert(TokenLease).values(
            conn_id=conn_id, holder=holder, acquired_at=now, expires_at=now + timedelta(seconds=lease_seconds)
        )
        take_over_expired = stmt.on_conflict_do_update(
            index_elements=[TokenLease.conn_id],
            set_={
                "holder": stmt.excluded.holder,
                "acquired_at": stmt.excluded.acquired_at,
                "expires_at": stmt.excluded.expires_at,
            },
            where=TokenLease.expires_at <= stmt.excluded.acquired_at,
        ).returning(TokenLease.holder)
        with self._db.write_tx() as conn:
            return conn.execute(take_over_expired).scalar_one_or_none() == holder

    def _release(self, conn_id: str, holder: str) -> None:
        with self._db.write_tx() as conn:
            released = conn.execute(
                delete(TokenLease).where(TokenLease.conn_id == conn_id, TokenLease.holder == holder)
            ).rowcount
        if not released:
            log.warning(
                "the token refresh lease of %s expired while held; raise lease_seconds above the refresh duration",
                conn_id,
            )

    def _lease_expiry(self, conn_id: str) -> datetime | None:
        with self._db.read_tx() as conn:
            return conn.execute(select(TokenLease.expires_at).where(TokenLease.conn_id == conn_id)).scalar_one_or_none()

    @contextmanager
    def refresh_lock(self, conn_id: str, *, timeout: float = 120.0, lease_seconds: float = 60.0) -> Iterator[None]:
        """Hold the refresh lock of ``conn_id`` (across threads and processes) for the ``with`` block.

        A lease row is taken by an atomic conditional upsert in its own short transaction and polled for with
        small sleeps; a crashed holder's lease expires after ``lease_seconds``. Threads of one process queue on
        an in-process lock first.

        :param timeout: seconds to wait before giving up.
        :param lease_seconds: how long the lease stays valid; must exceed the time the refresh takes.
        :raises TokenLockTimeout: the lock was not acquired within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        tlock = _thread_lock(self._db.engine.url.render_as_string(hide_password=True), conn_id)
        if not tlock.acquire(timeout=max(timeout, 0.0)):
            raise self._timeout_error(conn_id, timeout)
        try:
            holder = uuid.uuid4().hex
            pause = 0.01
            while not self._try_acquire(conn_id, holder, lease_seconds):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout_error(conn_id, timeout)
                time.sleep(min(remaining, pause * (0.5 + random.random())))
                pause = min(pause * 2, 0.25)
            try:
                yield
            finally:
                self._release(conn_id, holder)
        finally:
            tlock.release()

    def _timeout_error(self, conn_id: str, timeout: float) -> TokenLockTimeout:
        try:
            expiry = self._lease_expiry(conn_id)
        except Exception:  # the message is best effort; the timeout is the error
            expiry = None
        held = f"; the current lease expires at {expiry.isoformat()}" if expiry else ""
        return TokenLockTimeout(
            f"could not acquire the token refresh lock for {conn_id} within {timeout:g}s: another worker is "
            f"refreshing its token{held}. Retry the task; if a worker crashed its lease expires by itself"
        )
