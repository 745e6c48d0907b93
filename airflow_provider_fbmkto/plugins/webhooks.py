"""The FreshBooks webhook receiver, mounted by the plugin at ``/fbmkto/webhooks/freshbooks/{account}``.

Airflow adds no authentication to plugin apps, so the receiver authenticates each delivery itself: the
``X-FreshBooks-Hmac-SHA256`` header must be the HMAC of the form (as FreshBooks signs it) under the account's
verifier -- the connection's ``webhook_verifier`` extra, or a verifier confirmed with FreshBooks by
``fbmkto webhooks register``. Forged or unsigned deliveries get 401, other content types 415, bodies over
64 KB 413. Only accounts of the accounts config with ``webhooks: true`` take deliveries (unknown accounts 404,
others 403), and an event for another FreshBooks account than the one the account's connection names (its
``account_id`` extra) is refused with 403. Each accepted delivery is stored once in the state DB
(``delivery_id`` = sha256 of the signed text; a redelivery is acknowledged but not stored again) and answered
200 at once: the sync re-fetches the objects later, so nothing slow happens here.

``callback.verify`` requests (sent by FreshBooks when a callback is created) carry the new verifier; it is
stored encrypted and unconfirmed (see :mod:`airflow_provider_fbmkto.state.verifiers`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from airflow_provider_fbmkto.exceptions import ConfigError
from airflow_provider_fbmkto.hooks.freshbooks_webhooks import (
    SIGNATURE_HEADER,
    VERIFY_EVENT,
    delivery_id,
    signature_ok,
    signed_message,
)
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state import StateDB

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
ACCOUNT_RE = re.compile(r"^[a-z0-9_]{1,128}$")
#: Seconds an account's config and connection are cached (a change takes effect within this time).
CREDS_TTL = 60.0


@dataclass(frozen=True)
class ReceiverAccount:
    """What the receiver knows of one account from the accounts config.

    :param conn_id: its ``freshbooks`` connection.
    :param webhooks: its ``webhooks`` flag: only then are its events stored (a run consumes them).
    """

    conn_id: str
    webhooks: bool


def default_account(account: str) -> ReceiverAccount:
    """``account`` in the accounts config (``FBMKTO_CONFIG``, else ``fbmkto_accounts.yaml`` in the DAGs folder).

    :raises ConfigError: no config file, or it lists no valid account of that name (the receiver answers 404).
    """
    from airflow_provider_fbmkto.bundled import accounts_config_path
    from airflow_provider_fbmkto.sync.config import load_config_collecting

    path, _named = accounts_config_path()
    if not path.is_file():
        raise ConfigError(f"no accounts config at {path} (set FBMKTO_CONFIG for the api-server too)")
    accounts, _problems = load_config_collecting(path)
    for acct in accounts:
        if acct.name == account:
            return ReceiverAccount(acct.freshbooks_conn_id, acct.webhooks)
    raise ConfigError(f"{path}: no (valid) account {account!r}")


def _json(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "ok" if status == 200 else "error", "message": message}, status_code=status)


class Receiver:
    """The receiver's state: where events go and how accounts map to connections.

    :param state_conn_id: Airflow connection of the state DB.
    :param account_for: account name -> what the accounts config says of it (:class:`ConfigError` if unknown).
    """

    def __init__(
        self,
        *,
        state_conn_id: str = DEFAULT_CONN_ID,
        account_for: Callable[[str], ReceiverAccount] = default_account,
    ) -> None:
        self.state_conn_id = state_conn_id
        self.account_for = account_for
        self._accounts: dict[str, tuple[float, ReceiverAccount]] = {}
        self._creds: dict[str, tuple[float, str, str | None, str | None]] = {}

    def account(self, account: str) -> ReceiverAccount:
        """The account as the accounts config has it (cached for :data:`CREDS_TTL`)."""
        cached = self._accounts.get(account)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = self.account_for(account)
        self._accounts[account] = (time.monotonic() + CREDS_TTL, found)
        return found

    def _state(self) -> StateDB:
        from airflow_provider_fbmkto.state import StateDB

        return StateDB.from_airflow(conn_id=self.state_conn_id)

    def connection(self, account: str) -> tuple[str, str | None, str | None]:
        """``(conn id, webhook_verifier, account_id)`` of the account's connection (cached for
        :data:`CREDS_TTL`); :class:`ConfigError` if the account or its connection is missing."""
        cached = self._creds.get(account)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1:]
        from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook

        conn_id = self.account(account).conn_id
        creds = FreshBooksHook(conn_id).creds
        self._creds[account] = (time.monotonic() + CREDS_TTL, conn_id, creds.webhook_verifier, creds.account_id)
        return conn_id, creds.webhook_verifier, creds.account_id

    def connection_verifier(self, account: str) -> str | None:
        """The connection's ``webhook_verifier``; :class:`ConfigError` if the connection is missing."""
        return self.connection(account)[1]

    def webhooks_on(self, account: str) -> bool:
        """Whether the account has ``webhooks: true``; :class:`ConfigError` if it is not in the accounts config."""
        return self.account(account).webhooks

    def foreign(self, account: str, fb_account_id: str) -> str | None:
        """Why an event of FreshBooks account ``fb_account_id`` is not ``account``'s (``None``: it is, or the
        connection names no ``account_id`` and the run checks it instead)."""
        conn_id, _verifier, own = self.connection(account)
        if own is None or str(own) == str(fb_account_id):
            return None
        return f"it is for FreshBooks account {fb_account_id}; connection {conn_id} reads account {own}"

    def verifiers(self, account: str) -> list[str]:
        own = self.connection_verifier(account)
        confirmed = self._state().verifiers.confirmed(account)
        return [v for v in (own, *confirmed) if v]

    def store_verifier(self, account: str, callback_id: str, verifier: str) -> None:
        self.connection_verifier(account)  # unknown account -> ConfigError -> 404
        self._state().verifiers.store(account, callback_id, verifier)

    def record(self, account: str, fields: dict[str, str], delivery: str) -> bool:
        return bool(
            self._state().events.record(
                account,
                name=fields["name"],
                object_id=fields["object_id"],
                account_id=fields["account_id"],
                business_id=fields.get("business_id") or None,
                user_id=fields.get("user_id") or None,
                received_at=datetime.now(timezone.utc),
                delivery_id=delivery,
            )
        )


async def _read_body(request: Request) -> bytes | None:
    """The body, or ``None`` once it exceeds :data:`MAX_BODY` (the rest is not read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_router(receiver: Receiver | None = None) -> APIRouter:
    """An ``APIRouter`` with ``POST /webhooks/freshbooks/{account}`` bound to ``receiver``."""
    receiver = receiver or Receiver()
    router = APIRouter()

    @router.post("/webhooks/freshbooks/{account}", include_in_schema=False)
    async def receive(account: str, request: Request) -> JSONResponse:
        if not ACCOUNT_RE.match(account):
            return _json(404, "unknown account")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != FORM_TYPE:
            return _json(415, f"FreshBooks webhooks are {FORM_TYPE}")
        body = await _read_body(request)
        if body is None:
            return _json(413, f"body over {MAX_BODY} bytes")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            return _json(400, "malformed form body")
        fields = dict(pairs)
        try:
            if not await run_in_threadpool(receiver.webhooks_on, account):
                log.warning(
                    "fbmkto webhooks: refused a delivery for %s: webhooks are off for it (set webhooks: true on the "
                    "account in the accounts config)",
                    account,
                )
                return _json(403, "webhooks are off for this account")
            if fields.get("name") == VERIFY_EVENT:
                if not fields.get("verifier") or not fields.get("object_id"):
                    return _json(400, "callback.verify needs verifier and object_id")
                await run_in_threadpool(receiver.store_verifier, account, fields["object_id"], fields["verifier"])
                log.info("fbmkto webhooks: stored the verifier of callback %s for %s", fields["object_id"], account)
                return _json(200, "verifier stored; confirm it with: fbmkto webhooks verify")
            verifiers = await run_in_threadpool(receiver.verifiers, account)
        except ConfigError as exc:
            log.warning("fbmkto webhooks: delivery for unknown account %s: %s", account, exc)
            return _json(404, "unknown account")
        message = signed_message(pairs)
        if not signature_ok(message, request.headers.get(SIGNATURE_HEADER), verifiers):
            log.warning("fbmkto webhooks: rejected a delivery for %s with a missing or wrong signature", account)
            return _json(401, "bad or missing signature")
        missing = [k for k in ("name", "object_id", "account_id") if not fields.get(k)]
        if missing:
            return _json(400, f"missing field(s): {', '.join(missing)}")
        try:
            foreign = await run_in_threadpool(receiver.foreign, account, fields["account_id"])
        except ConfigError as exc:
            log.warning("fbmkto webhooks: delivery for unknown account %s: %s", account, exc)
            return _json(404, "unknown account")
        if foreign:
            log.warning("fbmkto webhooks: refused a delivery for %s: %s", account, foreign)
            return _json(403, "event of another FreshBooks account")
        new = await run_in_threadpool(receiver.record, account, fields, delivery_id(message))
        log.info(
            "fbmkto webhooks: %s %s for %s (%s)",
            fields["name"],
            fields["object_id"],
            account,
            "new" if new else "duplicate",
        )
        return _json(200, "stored" if new else "duplicate")

    return router
