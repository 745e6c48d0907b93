"""FreshBooks webhook pieces shared by the hook, the CLI and the receiver: callbacks and signatures.

A delivery is a form; its signature header ``X-FreshBooks-Hmac-SHA256`` is
``base64(HMAC-SHA256(key=verifier, msg=json.dumps(dict(form))))`` (Python's default separators, fields in
the order they were sent). The same JSON text, hashed, identifies a delivery, so a redelivery of the same
event is recognised and stored once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_fbmkto.exceptions import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import requests

SIGNATURE_HEADER = "X-FreshBooks-Hmac-SHA256"
VERIFY_EVENT = "callback.verify"
#: Event families a user can subscribe to; a bare family name subscribes to all of its events.
EVENT_SCOPES = {
    "invoice": "user:invoices:read",
    "payment": "user:payments:read",
    "client": "user:clients:read",
}


@dataclass(frozen=True, slots=True)
class Webhook:
    """A registered FreshBooks callback."""

    id: int
    event: str
    uri: str
    verified: bool

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Webhook:
        return cls(
            id=int(obj.get("callbackid") or obj.get("id") or 0),
            event=str(obj.get("event") or ""),
            uri=str(obj.get("uri") or ""),
            verified=bool(obj.get("verified")),
        )


def scope_for_event(event: str) -> str | None:
    """The read scope FreshBooks requires to subscribe to ``event`` (``invoice.create`` -> invoices)."""
    return EVENT_SCOPES.get(event.split(".", 1)[0])


def signed_message(fields: Iterable[tuple[str, str]]) -> str:
    """The text FreshBooks signs: the form fields as ``json.dumps`` renders a dict."""
    return json.dumps(dict(fields))


def signature(message: str, verifier: str) -> str:
    digest = hmac.new(verifier.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_ok(message: str, header: str | None, verifiers: Iterable[str]) -> bool:
    """Whether ``header`` is the signature of ``message`` by any of ``verifiers`` (constant-time compare)."""
    if not header:
        return False
    given = header.strip().encode()
    ok = False
    for verifier in verifiers:
        if verifier:
            ok |= hmac.compare_digest(signature(message, verifier).encode(), given)
    return ok


def delivery_id(message: str) -> str:
    """Stable id of a delivery: sha256 of the signed text (a redelivery has the same id)."""
    return hashlib.sha256(message.encode()).hexdigest()


class FreshBooksWebhooks:
    """A :class:`~airflow_provider_fbmkto.hooks.freshbooks.FreshBooksHook`'s callback management.

    The hook owns one (``hook.webhooks``) and hands it the few requests it needs, so every call goes through the
    hook's authorised, retried requests and error mapping; this object holds no connection or token itself.

    :param request_json: ``(method, path, *, what, scope=None, json=None) -> body``: send, return the JSON body.
    :param request: the same, returning the response; ``ok`` names the statuses that are a success.
    :param result: ``(body, what) -> result``: FreshBooks' ``response.result`` envelope, unwrapped.
    :param pages: ``(path, key, params, *, what, scope) -> objects`` of a list endpoint, page by page.
    :param account_id: the FreshBooks account id (asked when first needed: it may cost a ``users/me`` call).
    :param add_secret: keeps a value out of logs and error messages.
    """

    def __init__(
        self,
        *,
        request_json: Callable[..., Any],
        request: Callable[..., requests.Response],
        result: Callable[[Any, str], dict[str, Any]],
        pages: Callable[..., Iterator[dict[str, Any]]],
        account_id: Callable[[], str],
        add_secret: Callable[[str], None],
    ) -> None:
        self._json = request_json
        self._call = request
        self._result = result
        self._pages = pages
        self._account_id = account_id
        self._add_secret = add_secret

    def _callbacks_path(self, callback_id: int | None = None) -> str:
        path = f"/events/account/{self._account_id()}/events/callbacks"
        return path if callback_id is None else f"{path}/{int(callback_id)}"

    def _callback(self, body: Any, what: str) -> Webhook:
        obj = self._result(body, what).get("callback")
        if not isinstance(obj, dict):
            raise ApiError(f"FreshBooks {what} answered without a callback object")
        return Webhook.from_json(obj)

    def register(self, event: str, uri: str) -> Webhook:
        """Create a callback for ``event`` (``invoice``, ``invoice.create``, …) posting to ``uri``.

        FreshBooks then sends a ``callback.verify`` request to ``uri``; complete it with :meth:`verify`. POST is
        not retried after it may have reached FreshBooks.
        """
        body = {"callback": {"event": event, "uri": uri}}
        what = f"POST callback {event}"
        return self._callback(
            self._json("POST", self._callbacks_path(), what=what, scope=scope_for_event(event), json=body), what
        )

    def list(self) -> Iterator[Webhook]:
        """Registered callbacks."""
        for obj in self._pages(self._callbacks_path(), "callbacks", [], what="GET callbacks", scope=None):
            yield Webhook.from_json(obj)

    def verify(self, callback_id: int, verifier: str) -> Webhook:
        """Confirm a callback with the verifier FreshBooks delivered to the receiver."""
        from airflow_provider_fbmkto.hooks.connection_values import mask

        self._add_secret(verifier)
        mask(verifier)
        what = f"PUT callback {int(callback_id)} verify"
        body = {"callback": {"verifier": verifier}}
        return self._callback(self._json("PUT", self._callbacks_path(callback_id), what=what, json=body), what)

    def resend_verification(self, callback_id: int) -> Webhook:
        """Ask FreshBooks to send the ``callback.verify`` request again."""
        what = f"PUT callback {int(callback_id)} resend"
        body = {"callback": {"resend": True}}
        return self._callback(self._json("PUT", self._callbacks_path(callback_id), what=what, json=body), what)

    def delete(self, callback_id: int) -> None:
        """Delete a callback (HTTP 204)."""
        what = f"DELETE callback {int(callback_id)}"
        self._call("DELETE", self._callbacks_path(callback_id), what=what, ok=(200, 204)).close()
