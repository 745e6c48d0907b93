"""Webhook callbacks: registration, verification, signed form-encoded deliveries from a background worker."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from .errors import EventsError

RESOURCES = ("client", "invoice", "payment")
EVENTS = frozenset(
    [*RESOURCES] + [f"{r}.{a}" for r in RESOURCES for a in ("create", "update", "delete")] + ["invoice.sendByEmail"]
)
SCOPE_OF_RESOURCE = {"client": "user:clients:read", "invoice": "user:invoices:read", "payment": "user:payments:read"}
SIGNATURE_HEADER = "X-FreshBooks-Hmac-SHA256"
VERIFY_DELAY = 0.05  # seconds: lets the create call answer before the verification request leaves


def sign(fields: Mapping[str, str], verifier: str) -> str:
    """FreshBooks' signature: base64(HMAC-SHA256(verifier, json.dumps(dict of the form fields)))."""
    message = json.dumps({k: str(v) for k, v in fields.items()}).encode("utf-8")
    return base64.b64encode(hmac.new(verifier.encode("utf-8"), message, hashlib.sha256).digest()).decode()


def subscribes(event: str, name: str) -> bool:
    """Whether a callback registered for ``event`` gets ``name`` (a bare resource gets all of its events)."""
    return event == name or event == name.split(".", 1)[0]


@dataclass
class Callback:
    id: int
    event: str
    uri: str
    verifier: str
    updated_at: datetime
    verified: bool = False

    def render(self) -> dict[str, Any]:
        return {
            "callbackid": self.id,
            "event": self.event,
            "uri": self.uri,
            "verified": self.verified,
            "updated_at": self.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


@dataclass
class Delivery:
    """One POST the emulator made (or tried) to a receiver."""

    callback_id: int | None
    uri: str
    fields: dict[str, str]
    signature: str
    at: datetime
    status: int | None = None
    error: str | None = None


@dataclass
class _Job:
    not_before: float
    uri: str
    fields: dict[str, str]
    verifier: str
    callback_id: int | None


class WebhookHub:
    """Callbacks of the account plus the delivery worker (one thread, FIFO, best effort, no retries)."""

    def __init__(self, *, identity: Mapping[str, str], clock: Callable[[], datetime], timeout: float = 5.0) -> None:
        self.identity = dict(identity)  # account_id, business_id, identity_id, user_id (as strings)
        self.clock = clock
        self.timeout = timeout
        self.lock = threading.Lock()
        self.callbacks: dict[int, Callback] = {}
        self.deliveries: list[Delivery] = []
        self._next_id = 2001
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    def reset(self) -> None:
        with self.lock:
            self.callbacks.clear()
            self.deliveries.clear()
            self._next_id = 2001

    # --- management (the /events API) ----------------------------------------------------------------------

    def create(self, event: Any, uri: Any, granted: tuple[str, ...]) -> Callback:
        details = []
        if not isinstance(event, str) or event not in EVENTS:
            details.append(f"event: Value error, Unrecognized event. Known: {', '.join(sorted(EVENTS))}")
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            details.append("uri: Input should be a valid URL, relative URL without a base")
        if details:
            raise EventsError(
                "The request was well-formed but was unable to be followed due to semantic errors.",
                status=422,
                details=details,
            )
        needed = SCOPE_OF_RESOURCE[event.split(".", 1)[0]]
        if needed not in granted:
            raise EventsError(
                f"insufficient scope: registering '{event}' needs '{needed}'; the access token was granted "
                f"'{' '.join(granted) or '(none)'}'",
                status=403,
            )
        with self.lock:
            cb = Callback(self._next_id, event, uri, secrets.token_urlsafe(24), self.clock())
            self._next_id += 1
            self.callbacks[cb.id] = cb
        self._send_verification(cb)
        return cb

    def get(self, callback_id: int) -> Callback:
        cb = self.callbacks.get(callback_id)
        if cb is None:
            raise EventsError("Requested resource could not be found.", status=404)
        return cb

    def verify(self, callback_id: int, verifier: Any) -> Callback:
        cb = self.get(callback_id)
        if not isinstance(verifier, str) or not hmac.compare_digest(verifier.encode(), cb.verifier.encode()):
            raise EventsError(
                "The request was well-formed but was unable to be followed due to semantic errors.",
                status=422,
                details=["verifier: Invalid verifier; use the one FreshBooks sent to the callback uri."],
            )
        cb.verified = True
        cb.updated_at = self.clock()
        return cb

    def resend(self, callback_id: int) -> Callback:
        cb = self.get(callback_id)
        cb.verifier = secrets.token_urlsafe(24)
        cb.verified = False
        cb.updated_at = self.clock()
        self._send_verification(cb)
        return cb

    def delete(self, callback_id: int) -> None:
        self.get(callback_id)
        with self.lock:
            del self.callbacks[callback_id]

    # --- deliveries ----------------------------------------------------------------------------------------

    def event_fields(self, name: str, object_id: int) -> dict[str, str]:
        ident = self.identity
        return {
            "name": name,
            "object_id": str(object_id),
            "account_id": ident["account_id"],
            "business_id": ident["business_id"],
            "identity_id": ident["identity_id"],
            "user_id": ident["user_id"],
        }

    def _send_verification(self, cb: Callback) -> None:
        fields = {"name": "callback.verify", "object_id": str(cb.id), "verifier": cb.verifier}
        fields.update({k: v for k, v in self.event_fields("callback.verify", cb.id).items() if k not in fields})
        self._enqueue(_Job(time.monotonic() + VERIFY_DELAY, cb.uri, fields, cb.verifier, cb.id))

    def notify(self, name: str, object_id: int) -> None:
        """A record changed: queue a delivery to every verified callback subscribed to ``name``."""
        with self.lock:
            targets = [cb for cb in self.callbacks.values() if cb.verified and subscribes(cb.event, name)]
        for cb in targets:
            self._enqueue(_Job(time.monotonic(), cb.uri, self.event_fields(name, object_id), cb.verifier, cb.id))

    def post(self, uri: str, fields: dict[str, str], verifier: str, callback_id: int | None) -> requests.Response:
        """POST one signed, form-encoded delivery now and record it."""
        signature = sign(fields, verifier)
        delivery = Delivery(callback_id, uri, dict(fields), signature, self.clock())
        with self.lock:
            self.deliveries.append(delivery)
        try:
            with requests.Session() as session:
                session.trust_env = False  # straight to the receiver: no proxy settings from the environment
                response = session.post(uri, data=fields, headers={SIGNATURE_HEADER: signature}, timeout=self.timeout)
        except requests.RequestException as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
            raise
        delivery.status = response.status_code
        return response

    def _enqueue(self, job: _Job) -> None:
        with self.lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="freshbooks-webhooks", daemon=True)
                self._worker.start()
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                wait = job.not_before - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                # a failure is recorded on the Delivery; best effort, like the real service's first attempt
                with contextlib.suppress(requests.RequestException):
                    self.post(job.uri, job.fields, job.verifier, job.callback_id)
            finally:
                self._queue.task_done()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every queued delivery was attempted; ``False`` if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        with self.lock:
            worker = self._worker
            self._worker = None
        if worker is not None and worker.is_alive():
            self._queue.put(None)
            worker.join(timeout=self.timeout + 1)
