"""``FreshBooksEmulator``: the public face: a real HTTP server over the model, OAuth, webhooks and faults."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from airflow_provider_fbmkto.testing.server import ThreadedServer

from .errors import FieldError
from .faults import Fault, FaultQueue, validate
from .fields import normalize_kind
from .handlers import DEFAULT_PER_PAGE
from .models import FreshBooksModel
from .oauth import DEFAULT_SCOPES, OAuthServer
from .routes import CallRecord, EmulatorApp
from .webhooks import WebhookHub, sign, subscribes


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Behaviour:
    """The emulator's settings for behaviours FreshBooks does not document (see ``FreshBooksEmulator``)."""

    payment_touches_invoice: bool
    search_zone: str
    default_per_page: int

    @classmethod
    def checked(cls, payment_touches_invoice: object, search_zone: object, default_per_page: object) -> Behaviour:
        """Validate each value; a bad one raises :class:`FieldError` naming the setting and what it takes."""
        if not isinstance(payment_touches_invoice, bool):
            raise FieldError("payment_touches_invoice", f"must be true or false, got {payment_touches_invoice!r}")
        try:
            zone = ZoneInfo(str(search_zone)).key if isinstance(search_zone, str) and search_zone else None
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
        if zone is None:
            raise FieldError("search_zone", f"must be an IANA time zone such as 'UTC', got {search_zone!r}")
        if isinstance(default_per_page, bool) or not isinstance(default_per_page, int) or default_per_page < 1:
            raise FieldError("default_per_page", f"must be an integer >= 1, got {default_per_page!r}")
        return cls(payment_touches_invoice, zone, default_per_page)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FreshBooksEmulator:
    """A strict FreshBooks API on ``127.0.0.1:<port>`` with in-memory state (see the package docstring).

    :param port: TCP port; 0 picks a free one (read ``url`` after ``start()``).
    :param seed: deterministic data to start with: ``"demo"`` or any string/int (see ``seed.seed``).
    :param clock: returns the current aware UTC datetime; default real time. Token and code lifetimes,
        ``updated`` stamps and "overdue" all follow it.
    :param client_id: the registered app's client id (connection ``login``).
    :param client_secret: its secret (connection ``password``).
    :param redirect_uri: the app's registered redirect URI.
    :param account_id: the accounting account id (``/accounting/account/{account_id}/…``).
    :param business_id: the numeric business id shown by ``users/me``.
    :param access_token_ttl: access-token lifetime in seconds (FreshBooks: 12 hours).

    Behaviours FreshBooks' documentation does not pin down are switches, so a sync can be tested both ways
    (the defaults are the emulator's historical choices; :meth:`configure` changes them on a running emulator):

    :param payment_touches_invoice: recording, changing or deleting a payment bumps its invoice's ``updated``
        (and emits ``invoice.update``); ``False``: the invoice's amounts change but its ``updated`` stays.
    :param search_zone: IANA zone whose calendar days ``search[updated_min|max]`` are compared in
        (``"America/New_York"``, the zone of ``updated``; try ``"UTC"`` or the business's zone).
    :param default_per_page: page size of a list call that sends no ``per_page`` (documented as 15).
    """

    authorize_url_path = "/oauth/authorize"
    identity_id = 7001
    user_id = 1
    owner_email = "owner@acme-consulting.example"
    business_name = "Acme Consulting"

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        seed: str | int | None = None,
        clock: Callable[[], datetime] | None = None,
        client_id: str = "fb-client-id",
        client_secret: str = "fb-client-secret",  # noqa: S107 - the emulator's made-up app secret
        redirect_uri: str = "https://localhost/fbmkto/callback",
        account_id: str = "ACME01",
        business_id: int = 1001,
        access_token_ttl: int = 43200,
        payment_touches_invoice: bool = True,
        search_zone: str = "America/New_York",
        default_per_page: int = DEFAULT_PER_PAGE,
    ) -> None:
        self._behaviour = Behaviour.checked(payment_touches_invoice, search_zone, default_per_page)
        self.default_per_page = self._behaviour.default_per_page
        self._base_clock = clock or _utc_now
        self._offset = timedelta(0)
        self.seed = seed
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.account_id = account_id
        self.business_id = business_id
        self.model = FreshBooksModel(
            clock=self.now,
            account_id=account_id,
            payment_touches_invoice=self._behaviour.payment_touches_invoice,
            search_zone=ZoneInfo(self._behaviour.search_zone),
        )
        self.oauth = OAuthServer(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            access_token_ttl=access_token_ttl,
            clock=self.now,
        )
        self.webhooks = WebhookHub(
            identity={
                "account_id": account_id,
                "business_id": str(business_id),
                "identity_id": str(self.identity_id),
                "user_id": str(self.user_id),
            },
            clock=self.now,
        )
        self.model.listeners.append(self.webhooks.notify)
        self.faults: FaultQueue[Fault] = FaultQueue()
        self.calls: list[CallRecord] = []
        self._calls_lock = threading.Lock()
        self.generation = 0  # bumped by reset(); calls in flight across a reset are not logged
        self._server = ThreadedServer(EmulatorApp(self), host=host, port=port)
        self._started = False
        self._apply_seed()

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``; the real port is known once started."""
        return self._server.url

    @property
    def app(self) -> EmulatorApp:
        """The ASGI app, for serving it some other way (e.g. mounted in a test client)."""
        return self._server.app  # type: ignore[no-any-return]

    def start(self) -> FreshBooksEmulator:
        if not self._started:
            self._server.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False
        self.webhooks.close()

    def __enter__(self) -> FreshBooksEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Start (if needed) and block until Ctrl-C; for ``fbmkto emulate``."""
        self.start()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def reset(self, *, reseed: bool = True) -> None:
        """Forget all records, tokens, codes, callbacks, faults and calls; re-apply the constructor's seed."""
        self.model.reset()
        self.oauth.reset()
        self.webhooks.reset()
        self.faults.clear()
        with self._calls_lock:
            self.calls.clear()
            self.generation += 1
        self._offset = timedelta(0)
        self.configure(**self._behaviour.as_dict())
        if reseed:
            self._apply_seed()

    def _apply_seed(self) -> None:
        if self.seed is not None:
            from .seed import seed as apply_seed

            apply_seed(self.model, self.seed)

    # --- undocumented behaviours ----------------------------------------------------------------------------

    def configure(
        self,
        *,
        payment_touches_invoice: bool | None = None,
        search_zone: str | None = None,
        default_per_page: int | None = None,
    ) -> dict[str, Any]:
        """Switch behaviours FreshBooks does not document (``None`` keeps one); returns them all.

        Same meaning as the constructor's arguments; ``reset()`` goes back to the constructor's values.
        """
        current = self.behaviour()
        wanted = Behaviour.checked(
            current["payment_touches_invoice"] if payment_touches_invoice is None else payment_touches_invoice,
            current["search_zone"] if search_zone is None else search_zone,
            current["default_per_page"] if default_per_page is None else default_per_page,
        )
        self.default_per_page = wanted.default_per_page
        self.model.configure(
            payment_touches_invoice=wanted.payment_touches_invoice, search_zone=ZoneInfo(wanted.search_zone)
        )
        return self.behaviour()

    def behaviour(self) -> dict[str, Any]:
        """The current settings of the undocumented behaviours (see the constructor)."""
        return {
            "payment_touches_invoice": self.model.payment_touches_invoice,
            "search_zone": self.model.search_zone.key,
            "default_per_page": self.default_per_page,
        }

    # --- clock ---------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator clock: the injected clock plus any ``advance_clock`` offset, aware UTC."""
        return self._base_clock().astimezone(timezone.utc) + self._offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator clock forward (codes and tokens age, overdue moves) without touching the clock."""
        self._offset += timedelta(seconds=seconds)

    # --- connection and identity ---------------------------------------------------------------------------

    def conn_json(self, **extra: str) -> str:
        """The Airflow connection (``AIRFLOW_CONN_…`` JSON) that points a FreshBooksHook at this emulator."""
        return json.dumps(
            {
                "conn_type": "freshbooks",
                "host": self.url,
                "login": self.client_id,
                "password": self.client_secret,
                "extra": {"redirect_uri": self.redirect_uri, "account_id": self.account_id, **extra},
            }
        )

    def identity(self) -> dict[str, Any]:
        """The ``response`` of ``GET /auth/api/v1/users/me``."""
        return {
            "id": self.identity_id,
            "identity_id": self.identity_id,
            "identity_uuid": f"00000000-0000-4000-8000-{self.identity_id:012d}",
            "first_name": "Alex",
            "last_name": "Rivera",
            "email": self.owner_email,
            "language": "en",
            "confirmed_at": "2020-01-06T15:00:00Z",
            "created_at": "2020-01-06T14:55:00Z",
            "setup_complete": True,
            "business_memberships": [
                {
                    "id": 9001,
                    "role": "owner",
                    "unacknowledged_change": False,
                    "business": {
                        "id": self.business_id,
                        "business_uuid": f"00000000-0000-4000-9000-{self.business_id:012d}",
                        "name": self.business_name,
                        "account_id": self.account_id,
                        "date_format": "mm/dd/yyyy",
                    },
                }
            ],
            "roles": [
                {
                    "id": 9101,
                    "role": "admin",
                    "systemid": self.business_id,
                    "userid": self.user_id,
                    "created_at": "2020-01-06T14:55:00Z",
                    "accountid": self.account_id,
                }
            ],
        }

    # --- OAuth -----------------------------------------------------------------------------------------------

    def issue_code(self, scopes: str = DEFAULT_SCOPES, redirect_uri: str | None = None) -> str:
        """A one-time authorization code, as if the user clicked "Allow" (5 minutes of emulator clock)."""
        return self.oauth.issue_code(scopes, redirect_uri)

    def expire_access_tokens(self) -> None:
        self.oauth.expire()

    def revoke_refresh_tokens(self) -> None:
        self.oauth.revoke_refresh()

    # --- records -------------------------------------------------------------------------------------------

    def add_client(self, **fields: Any) -> dict[str, Any]:
        return self.add("client", **fields)

    def add_invoice(self, **fields: Any) -> dict[str, Any]:
        return self.add("invoice", **fields)

    def add_payment(self, **fields: Any) -> dict[str, Any]:
        return self.add("payment", **fields)

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Create a record (defaults filled, ``updated`` = now) and return it as the API renders it."""
        rec = self.model.add(kind, fields)
        with self.model.lock:
            return self.model.render(rec)

    def get(self, kind: str, id: int) -> dict[str, Any]:
        kind = normalize_kind(kind)
        with self.model.lock:
            return self.model.render(self.model.get(kind, id))

    def update(self, kind: str, id: int, **fields: Any) -> dict[str, Any]:
        rec = self.model.update(kind, id, fields)
        with self.model.lock:
            return self.model.render(rec)

    def delete(self, kind: str, id: int) -> None:
        self.model.delete(kind, id)

    def send_invoice(self, invoice_id: int) -> dict[str, Any]:
        """E-mail the invoice: a draft becomes sent; verified callbacks get ``invoice.sendByEmail``."""
        rec = self.model.send_invoice(invoice_id)
        with self.model.lock:
            return self.model.render(rec)

    # --- faults and calls ----------------------------------------------------------------------------------

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        path_prefix: str | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
    ) -> Fault:
        """Make the next ``count`` API requests under ``path_prefix`` fail (see ``faults.py`` for kinds)."""
        spec = {"kind": kind, "count": count, "path_prefix": path_prefix, "retry_after": retry_after, "delay": delay}
        fault = validate(spec)
        self.faults.add(fault)
        return fault

    def record_call(self, generation: int, call: CallRecord) -> None:
        """Log a finished API call, unless ``reset()`` ran while it was in flight (it belongs to the past)."""
        with self._calls_lock:
            if generation == self.generation:
                self.calls.append(call)

    def token_calls(self) -> list[CallRecord]:
        return [c for c in list(self.calls) if c.path == "/auth/oauth/token"]

    # --- webhooks ------------------------------------------------------------------------------------------

    def sign_webhook(self, fields: dict[str, str], verifier: str) -> str:
        """The ``X-FreshBooks-Hmac-SHA256`` value FreshBooks would send with these form fields."""
        return sign(fields, verifier)

    def deliver_webhook(self, target_url: str, name: str, object_id: int) -> requests.Response:
        """POST a signed delivery of event ``name`` now, using the verifier of the callback registered for
        ``target_url`` that subscribes to ``name`` (verified or not: this is a test helper)."""
        hub = self.webhooks
        matches = [cb for cb in hub.callbacks.values() if cb.uri == target_url and subscribes(cb.event, name)]
        if not matches:
            raise LookupError(f"no callback registered for {target_url!r} subscribing to {name!r}")
        cb = matches[0]
        return hub.post(cb.uri, hub.event_fields(name, object_id), cb.verifier, cb.id)

    def wait_for_webhooks(self, timeout: float = 5.0) -> bool:
        """Wait until queued webhook deliveries were attempted (``False`` on timeout)."""
        return self.webhooks.wait_idle(timeout)
