"""The FreshBooks webhook receiver, mounted by the plugin at ``/fbmkto/webhooks/freshbooks/{account}``.

Airflow adds no authentication to plugin apps, so the receiver authenticates each delivery itself: the
``X-FreshBooks-Hmac-SHA256`` header must be the HMAC of the form (as FreshBooks signs it) under the account's
verifier -- the connection's ``webhook_verifier`` extra, or a verifier confirmed with FreshBooks by
``fbmkto webhooks register``. Forged or unsigned deliveries get 401, other content types 415, bodies over
64 KB 413. Each accepted delivery is stored once in the state DB (``delivery_id`` = sha256 of the signed
text; a redelivery is acknowledged but not stored again) and answered 200 at once: the sync re-fetches the
objects later, so nothing slow happens here.

``callback.verify`` requests (sent by FreshBooks when a callback is created) carry the new verifier; it is
stored encrypted and unconfirmed (see :mod:`.verifiers`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
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

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state import StateDB

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
ACCOUNT_RE = re.compile(r"^[a-z0-9_]{1,128}$")
#: Seconds a connection's verifier is cached (a changed connection takes effect within this time).
CREDS_TTL = 60.0


def default_conn_id(account: str) -> str:
    """The ``freshbooks`` connection of ``account``.

    From the accounts config (``FBMKTO_CONFIG``, else ``fbmkto_accounts.yaml`` in the DAGs folder) when that
    file exists -- an account it does not list is unknown (:class:`ConfigError`); without a config file,
    the connection ``freshbooks_<account>``.
    """
    from airflow_provider_fbmkto.sync.config import config_path, load_config_collecting

    try:
        from airflow.configuration import conf

        dags_folder = conf.get("core", "dags_folder", fallback="") or "."
    except ImportError:  # pragma: no cover - Airflow is a dependency
        dags_folder = "."
    path = config_path(dags_folder, os.environ)
    if not path.is_file():
        return f"freshbooks_{account}"
    try:
        accounts, _problems = load_config_collecting(path)
    except ConfigError as exc:
        log.warning("fbmkto webhooks: %s; using connection freshbooks_%s", exc, account)
        return f"freshbooks_{account}"
    for acct in accounts:
        if acct.name == account:
            return acct.freshbooks_conn_id
    raise ConfigError(f"{path}: no (valid) account {account!r}")


def _json(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "ok" if status == 200 else "error", "message": message}, status_code=status)


class Receiver:
    """The receiver's state: where events go and how accounts map to connections.

    :param state_conn_id: Airflow connection of the state DB.
    :param conn_id_for: account name -> ``freshbooks`` connection id.
    """

    def __init__(
        self, *, state_conn_id: str = "fbmkto_state", conn_id_for: Callable[[str], str] = default_conn_id
    ) -> None:
        self.state_conn_id = state_conn_id
        self.conn_id_for = conn_id_for
        self._verifiers: dict[str, tuple[float, str | None]] = {}

    def _state(self) -> StateDB:
        from airflow_provider_fbmkto.state import StateDB

        return StateDB.from_airflow(conn_id=self.state_conn_id)

    def connection_verifier(self, account: str) -> str | None:
        """The connection's ``webhook_verifier`` (cached); :class:`ConfigError` if the connection is missing."""
        cached = self._verifiers.get(account)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        from airflow_provider_fbmkto.hooks.freshbooks import FreshBooksHook

        verifier = FreshBooksHook(self.conn_id_for(account)).creds.webhook_verifier
        self._verifiers[account] = (time.monotonic() + CREDS_TTL, verifier)
        return verifier

    def verifiers(self, account: str) -> list[str]:
        from airflow_provider_fbmkto.plugins.verifiers import WebhookVerifiers

        own = self.connection_verifier(account)
        confirmed = WebhookVerifiers(self._state()).confirmed(account)
        return [v for v in (own, *confirmed) if v]

    def store_verifier(self, account: str, callback_id: str, verifier: str) -> None:
        from airflow_provider_fbmkto.plugins.verifiers import WebhookVerifiers

        self.connection_verifier(account)  # unknown account -> ConfigError -> 404
        WebhookVerifiers(self._state()).store(account, callback_id, verifier)

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
            if fields.get("name") == VERIFY_EVENT:
                if not fields.get("verifier") or not fields.get("object_id"):
                    return _json(400, "callback.verify needs verifier and object_id")
                await run_in_threadpool(receiver.store_verifier, account, fields["object_id"], fields["verifier"])
                log.info("fbmkto webhooks: stored the verifier of callback %s for %s", fields["object_id"], account)
                return _json(200, "verifier stored; confirm it with: fbmkto webhooks verify")
            verifiers = await run_in_threadpool(receiver.verifiers, account)
        except ConfigError:
            log.warning("fbmkto webhooks: delivery for unknown account %s", account)
            return _json(404, "unknown account")
        message = signed_message(pairs)
        if not signature_ok(message, request.headers.get(SIGNATURE_HEADER), verifiers):
            log.warning("fbmkto webhooks: rejected a delivery for %s with a missing or wrong signature", account)
            return _json(401, "bad or missing signature")
        missing = [k for k in ("name", "object_id", "account_id") if not fields.get(k)]
        if missing:
            return _json(400, f"missing field(s): {', '.join(missing)}")
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
