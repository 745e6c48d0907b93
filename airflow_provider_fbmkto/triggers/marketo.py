"""MarketoBulkExportTrigger: wait in the triggerer until a Marketo bulk lead export finishes.

Pure async I/O: the connection comes from ``await BaseHook.aget_connection``, HTTP from ``httpx.AsyncClient``.
Nothing secret is serialized (only the conn id, export id, poll interval and deadline); the token is fetched
inside :meth:`run` and never leaves it. What is retried, and how long to wait, is decided by the same pure
functions as the sync hook (:func:`~airflow_provider_fbmkto.hooks.marketo_types.classify_answer`,
:func:`~airflow_provider_fbmkto.http.next_delay`, :func:`~airflow_provider_fbmkto.http.parse_retry_after`).

Status polls go at most once per ``poll_interval`` (Marketo asks for no more than once a minute), are not
counted in the state DB's daily budget (a trigger makes no DB call; at one a minute they are negligible) and
do not pass the process's rate limiter.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_fbmkto.exceptions import FbmktoError
from airflow_provider_fbmkto.hooks.marketo_auth import IDENTITY_PATH, identity_form, read_identity
from airflow_provider_fbmkto.hooks.marketo_types import (
    BulkExportStatus,
    ExportState,
    MarketoCreds,
    Verdict,
    classify_answer,
    envelope_codes,
    envelope_message,
)
from airflow_provider_fbmkto.http import RetryPolicy, next_delay, parse_retry_after, redact_text

CLASSPATH = "airflow_provider_fbmkto.triggers.marketo.MarketoBulkExportTrigger"


class _Retry(Exception):
    """A transient answer: wait (at least ``wait``) and poll again."""

    def __init__(self, reason: str, wait: float = 0.0, *, new_token: bool = False) -> None:
        super().__init__(reason)
        self.wait = wait
        self.new_token = new_token


class _Stop(Exception):
    """A final answer: emit an error event with this message."""


class MarketoBulkExportTrigger(BaseTrigger):
    """Poll a bulk export's status until Completed / Failed / Cancelled or ``timeout_at``.

    Yields exactly one event ``{"status": "success"|"error"|"timeout", "export_id", "message",
    "export_status"}`` and returns.

    :param export_id: the export job id.
    :param marketo_conn_id: the ``marketo`` connection (read asynchronously in the triggerer).
    :param poll_interval: seconds between status polls (≥ 60 for the real API; tests shorten it).
    :param timeout_at: absolute deadline as epoch seconds (or an aware datetime); ``None`` waits forever.
    """

    def __init__(
        self,
        export_id: str,
        marketo_conn_id: str = "marketo_default",
        poll_interval: float = 60.0,
        timeout_at: float | datetime | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.export_id = str(export_id)
        self.marketo_conn_id = marketo_conn_id
        self.poll_interval = float(poll_interval)
        if isinstance(timeout_at, datetime):
            if timeout_at.tzinfo is None:
                raise ValueError("timeout_at must be timezone-aware")
            timeout_at = timeout_at.timestamp()
        self.timeout_at = float(timeout_at) if timeout_at is not None else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "export_id": self.export_id,
                "marketo_conn_id": self.marketo_conn_id,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
            },
        )

    def _event(self, status: str, message: str, state: ExportState | None = None) -> TriggerEvent:
        return TriggerEvent(  # type: ignore[no-untyped-call]
            {
                "status": status,
                "export_id": self.export_id,
                "message": message,
                "export_status": state.value if state is not None else None,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            from airflow.sdk import BaseHook

            creds = MarketoCreds.from_connection(await BaseHook.aget_connection(self.marketo_conn_id))
        except Exception as exc:  # the connection is missing or invalid: say so in the event
            yield self._event("error", f"Marketo connection {self.marketo_conn_id!r}: {exc}")
            return
        secrets = [creds.client_secret]
        scale = creds.time_scale
        policy = RetryPolicy(attempts=5, base=0.5 * scale, cap=30.0 * scale)
        timeout = httpx.Timeout(creds.request_timeout, connect=10.0)
        failures = 0
        token: str | None = None
        async with httpx.AsyncClient(base_url=creds.base_url, timeout=timeout, follow_redirects=False) as client:
            while True:
                wait = self.poll_interval
                try:
                    if token is None:
                        token = await self._token(client, creds)
                        secrets.append(token)
                    status = await self._status(client, token, scale)
                    failures = 0
                    if status.state is ExportState.COMPLETED:
                        yield self._event(
                            "success", f"export {self.export_id} completed ({status.records} records)", status.state
                        )
                        return
                    if status.state.is_terminal():
                        detail = f": {redact_text(status.error, secrets)}" if status.error else ""
                        yield self._event(
                            "error", f"export {self.export_id} ended {status.state.value}{detail}", status.state
                        )
                        return
                except _Retry as retry:
                    if retry.new_token:
                        token = None
                    delay = next_delay(policy, failures, retry.wait or None, random.random())
                    failures += 1
                    if delay is None:
                        yield self._event("error", f"export {self.export_id}: {retry} (gave up after {failures} tries)")
                        return
                    wait = max(wait, delay)
                except (_Stop, FbmktoError) as stop:
                    yield self._event("error", f"export {self.export_id}: {redact_text(str(stop), secrets)}")
                    return
                remaining = None if self.timeout_at is None else self.timeout_at - time.time()
                if remaining is not None and remaining <= 0:
                    yield self._event("timeout", f"export {self.export_id} did not finish before the deadline")
                    return
                await asyncio.sleep(wait if remaining is None else min(wait, remaining))

    async def _token(self, client: httpx.AsyncClient, creds: MarketoCreds) -> str:
        response = await self._send(client, "POST", IDENTITY_PATH, data=identity_form(creds))
        self._raise_transient(response, [])
        try:
            body = response.json()
        except ValueError:
            body = None
        token, _ = read_identity(response.status_code, body, creds)  # AuthError/ApiError end the trigger
        try:
            from airflow.sdk.log import amask_secret

            await amask_secret(token)
        except Exception:  # noqa: S110 - masking is best effort outside a task/triggerer
            pass
        return token

    async def _status(self, client: httpx.AsyncClient, token: str, scale: float) -> BulkExportStatus:
        path = f"/bulk/v1/leads/export/{self.export_id}/status.json"
        response = await self._send(client, "GET", path, headers={"Authorization": f"Bearer {token}"})
        try:
            body = response.json()
        except ValueError:
            body = None
        codes = envelope_codes(body)
        self._raise_transient(response, codes, scale, envelope_message(body) if codes else "")
        if response.status_code != 200 or not isinstance(body, dict):
            raise _Stop(f"status answered HTTP {response.status_code}")
        if codes:
            raise _Stop(envelope_message(body))
        result = body.get("result") or []
        if not result:
            raise _Stop("status answered no result")
        return BulkExportStatus.from_marketo(result[0])

    @staticmethod
    def _raise_transient(response: httpx.Response, codes: list[str], scale: float = 1.0, message: str = "") -> None:
        verdict = classify_answer(response.status_code, codes, message)
        retry_after = parse_retry_after(response.headers.get("Retry-After")) or 0.0
        reason = ",".join(codes) or f"HTTP {response.status_code}"
        if verdict is Verdict.TOKEN:
            raise _Retry(f"token rejected ({reason})", new_token=True)
        if verdict is Verdict.QUOTA:
            raise _Stop("Marketo daily API quota (607) is exhausted; it resets at midnight US/Central")
        if verdict is Verdict.RATE:
            raise _Retry(f"rate limited ({reason})", max(retry_after, 20.0 * scale))
        if verdict in (Verdict.BACKOFF, Verdict.QUEUE_FULL):
            raise _Retry(f"transient error ({reason})", retry_after)

    @staticmethod
    async def _send(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _Retry(f"cannot reach Marketo ({type(exc).__name__})") from None
