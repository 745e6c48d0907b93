"""Webhook verifiers in the state DB, Fernet-encrypted: the receiver stores them, the CLI confirms them.

FreshBooks answers a new callback with a ``callback.verify`` request carrying a secret ``verifier``; the
registration is complete once it is sent back with ``PUT …/callbacks/<id>``. The receiver cannot trust a
verify request (anyone can post one), so it stores the verifier *unconfirmed*; ``fbmkto webhooks register``
(or ``verify``) sends it to FreshBooks and marks it confirmed only when FreshBooks accepts it. Only confirmed
verifiers (and the connection's ``webhook_verifier`` extra) authenticate deliveries.

The table ``fbmkto_webhook_verifiers`` is created with the other state tables (``StateDB.create_all``); its
name and columns are the ones the receiver used to create itself, so existing databases keep their verifiers.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from airflow_provider_fbmkto.state._util import utcnow
from airflow_provider_fbmkto.state.models import Base, UTCDateTime
from airflow_provider_fbmkto.state.tokens import fernet_keys

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state.db import StateDB

__all__ = ["WebhookVerifierRow", "WebhookVerifiers"]


class WebhookVerifierRow(Base):
    """One callback's verifier (encrypted) and whether FreshBooks accepted it."""

    __tablename__ = "fbmkto_webhook_verifiers"

    account: Mapped[str] = mapped_column(String(128), primary_key=True)
    callback_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookVerifiers:
    """Verifiers per (account name, callback id) in ``db``.

    :param db: the state DB (its Fernet key encrypts the verifiers).
    """

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def _fernet(self) -> MultiFernet:
        return MultiFernet(fernet_keys(self._db.fernet_key))

    def store(self, account: str, callback_id: str, verifier: str) -> None:
        """Keep the verifier of a ``callback.verify`` request, unconfirmed (replaces an older one)."""
        ciphertext = self._fernet().encrypt(verifier.encode()).decode()
        stmt = self._db.insert(WebhookVerifierRow).values(
            account=account, callback_id=str(callback_id), ciphertext=ciphertext, received_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[WebhookVerifierRow.account, WebhookVerifierRow.callback_id],
            set_={
                "ciphertext": stmt.excluded.ciphertext,
                "received_at": stmt.excluded.received_at,
                "verified_at": None,
            },
        )
        with self._db.write_tx() as conn:
            conn.execute(stmt)

    def _decrypt(self, ciphertext: str) -> str | None:
        try:
            return self._fernet().decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            return None

    def pending(self, callback_id: str) -> tuple[str, str] | None:
        """``(account, verifier)`` of the latest verify request for ``callback_id``, if one arrived."""
        with self._db.read_tx() as conn:
            row = conn.execute(
                select(WebhookVerifierRow.account, WebhookVerifierRow.ciphertext)
                .where(WebhookVerifierRow.callback_id == str(callback_id))
                .order_by(WebhookVerifierRow.received_at.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        verifier = self._decrypt(row.ciphertext)
        return (row.account, verifier) if verifier is not None else None

    def confirm(self, account: str, callback_id: str) -> None:
        """Mark the verifier accepted by FreshBooks: from now on it authenticates deliveries."""
        with self._db.write_tx() as conn:
            conn.execute(
                update(WebhookVerifierRow)
                .where(WebhookVerifierRow.account == account, WebhookVerifierRow.callback_id == str(callback_id))
                .values(verified_at=utcnow())
            )

    def confirmed(self, account: str) -> list[str]:
        """The confirmed verifiers of ``account`` (one per verified callback)."""
        with self._db.read_tx() as conn:
            rows = conn.execute(
                select(WebhookVerifierRow.ciphertext).where(
                    WebhookVerifierRow.account == account, WebhookVerifierRow.verified_at.is_not(None)
                )
            ).scalars()
            ciphertexts = list(rows)
        return [v for v in map(self._decrypt, ciphertexts) if v is not None]

    def forget(self, callback_id: str) -> None:
        """Drop the verifier of a deleted callback."""
        with self._db.write_tx() as conn:
            conn.execute(delete(WebhookVerifierRow).where(WebhookVerifierRow.callback_id == str(callback_id)))
