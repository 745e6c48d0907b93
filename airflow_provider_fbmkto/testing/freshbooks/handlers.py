"""Request parsing and FreshBooks' real envelopes (moto's ``responses.py``). Rules live in the models."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response

from .errors import (
    ERRNO_FORBIDDEN,
    ERRNO_UNAUTHORIZED,
    AccountingError,
    EmulatorError,
    EventsError,
    FieldError,
    InvalidRequest,
    InvalidSearch,
    NotFound,
    OAuthError,
    ScopeMissing,
    TokenRejected,
)
from .search import SEARCH_KEYS, Search

if TYPE_CHECKING:
    from .emulator import FreshBooksEmulator

#: accounting path -> (kind, plural, singular, scope needed)
RESOURCES: dict[str, tuple[str, str, str, str]] = {
    "users/clients": ("client", "clients", "client", "user:clients:read"),
    "invoices/invoices": ("invoice", "invoices", "invoice", "user:invoices:read"),
    "payments/payments": ("payment", "payments", "payment", "user:payments:read"),
}
PROFILE_SCOPE = "user:profile:read"
DEFAULT_PER_PAGE = 15
MAX_PER_PAGE = 100
_SEARCH_KEY = re.compile(r"^search\[([A-Za-z0-9_]+)\](\[\])?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Ctx:
    """One parsed request."""

    emu: FreshBooksEmulator
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: dict[str, Any] | None
    body_error: str | None
    params: dict[str, str] = field(default_factory=dict)

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


Handler = Callable[[Ctx], Response]


# --- errors, per API family -----------------------------------------------------------------------------------


def render_error(exc: EmulatorError, family: str) -> Response:
    """Render ``exc`` in the error shape of ``family`` (oauth, identity, accounting, events, control)."""
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if isinstance(exc, TokenRejected) else None
    if isinstance(exc, OAuthError):
        return JSONResponse({"error": exc.error, "error_description": exc.message}, exc.status)
    if isinstance(exc, FieldError) or family == "control":
        return JSONResponse({"error": exc.message, "field": getattr(exc, "field", None)}, exc.status)
    if family == "accounting":
        if isinstance(exc, AccountingError):
            entry = {"errno": exc.errno, "field": exc.field, "message": exc.message, "object": exc.obj}
            if exc.value is not None:
                entry["value"] = exc.value
        elif isinstance(exc, ScopeMissing):
            entry = {"errno": ERRNO_FORBIDDEN, "field": "scope", "message": exc.message, "object": "scope"}
        else:
            entry = {"errno": ERRNO_UNAUTHORIZED, "field": "access_token", "message": exc.message, "object": "token"}
        return JSONResponse({"response": {"errors": [entry]}}, exc.status, headers=headers)
    if family == "events":
        message = f"invalid_token: {exc.message}" if isinstance(exc, TokenRejected) else exc.message
        body: dict[str, Any] = {"errno": exc.status, "message": message}
        if isinstance(exc, EventsError) and exc.details:
            body["details"] = exc.details
        return JSONResponse(body, exc.status, headers=headers)
    error = {TokenRejected: "unauthenticated", ScopeMissing: "insufficient_scope"}.get(type(exc), "invalid_request")
    return JSONResponse({"error": error, "error_description": exc.message}, exc.status, headers=headers)


# --- OAuth and identity ----------------------------------------------------------------------------------------


def authorize(ctx: Ctx) -> Response:
    params = {k: v[0] for k, v in ctx.query.items() if v}
    return RedirectResponse(ctx.emu.oauth.authorize(params), status_code=302)


def token(ctx: Ctx) -> Response:
    if ctx.body_error:
        raise InvalidRequest(f"request body is not valid: {ctx.body_error}")
    if not ctx.body:
        raise InvalidRequest("send grant_type, client_id, client_secret, … as a JSON or form-encoded body")
    return JSONResponse(ctx.emu.oauth.token(ctx.body), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def users_me(ctx: Ctx) -> Response:
    ctx.emu.oauth.check(ctx.authorization, PROFILE_SCOPE)
    return JSONResponse({"response": ctx.emu.identity()})


# --- accounting --------------------------------------------------------------------------------------------------


def _resource(ctx: Ctx) -> tuple[str, str, str]:
    kind, plural, singular, scope = RESOURCES[ctx.params["resource"]]
    ctx.emu.oauth.check(ctx.authorization, scope)
    if ctx.params["account_id"] != ctx.emu.account_id:
        raise NotFound("Account not found.", field="account_id", obj="account", value=ctx.params["account_id"])
    return kind, plural, singular


def _int_param(ctx: Ctx, name: str, default: int, kind: str) -> int:
    raw = ctx.q(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidSearch(f"{name} must be an integer, got {raw!r}", field=name, obj=kind, value=raw) from None


def _search_value(kind: str, name: str, values: list[str], is_list: bool) -> Any:
    def fail(raw: str, expected: str) -> InvalidSearch:
        return InvalidSearch(f"Invalid value {raw!r} for search[{name}]: {expected}", field=name, obj=kind, value=raw)

    def as_int(raw: str) -> int:
        try:
            return int(raw)
        except ValueError:
            raise fail(raw, "expected an integer") from None

    if name in ("updated_min", "updated_max", "date_min", "date_max"):
        raw = values[-1]
        try:
            if not _DATE.match(raw):
                raise ValueError(raw)
            return date.fromisoformat(raw)
        except ValueError:
            raise fail(raw, "expected a date YYYY-MM-DD") from None
    if name in ("invoiceids", "userids"):
        return tuple(as_int(v) for v in values)
    if name in ("customerid", "invoiceid"):
        return as_int(values[-1])
    if name == "vis_state":
        state = as_int(values[-1])
        if state not in (0, 1, 2):
            raise fail(values[-1], "expected 0 (active), 1 (deleted) or 2 (archived)")
        return state
    return values[-1]


def parse_search(ctx: Ctx, kind: str) -> Search:
    """``search[key]=…`` filters the endpoint knows; unknown keys are ignored silently (as FreshBooks does)."""
    found: dict[str, Any] = {}
    for key, values in ctx.query.items():
        match = _SEARCH_KEY.match(key)
        if not match or match.group(1) not in SEARCH_KEYS[kind] or not values:
            continue
        name = match.group(1)
        found[name] = _search_value(kind, name, values, bool(match.group(2)))
    return Search(**found)


def accounting_list(ctx: Ctx) -> Response:
    kind, plural, _ = _resource(ctx)
    page = max(1, _int_param(ctx, "page", 1, kind))
    per_page = min(MAX_PER_PAGE, max(1, _int_param(ctx, "per_page", ctx.emu.default_per_page, kind)))
    search = parse_search(ctx, kind)
    model = ctx.emu.model
    with model.lock:
        ids = model.search(kind, search)
        start = (page - 1) * per_page
        table = model.table(kind)
        rows = [model.render(table[i]) for i in ids[start : start + per_page]]
    result = {plural: rows, "page": page, "pages": math.ceil(len(ids) / per_page), "per_page": per_page}
    result["total"] = len(ids)
    return JSONResponse({"response": {"result": result}})


def accounting_get(ctx: Ctx) -> Response:
    kind, _, singular = _resource(ctx)
    model = ctx.emu.model
    with model.lock:
        rendered = model.render(model.get(kind, int(ctx.params["id"])))
    return JSONResponse({"response": {"result": {singular: rendered}}})


# --- events: webhook callbacks -----------------------------------------------------------------------------------


def _events_access(ctx: Ctx) -> tuple[str, ...]:
    held = ctx.emu.oauth.check(ctx.authorization, None)
    if ctx.params["account_id"] != ctx.emu.account_id:
        raise EventsError("Requested resource could not be found.", status=404)
    return held.scopes


def _callback_body(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body if ctx.body_error is None else None
    inner = body.get("callback") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise EventsError(
            "The request was well-formed but was unable to be followed due to semantic errors.",
            status=422,
            details=['callback: send a JSON body {"callback": {...}}'],
        )
    return inner


def callbacks_list(ctx: Ctx) -> Response:
    _events_access(ctx)
    page = max(1, _int_param(ctx, "page", 1, "callback"))
    per_page = min(MAX_PER_PAGE, max(1, _int_param(ctx, "per_page", ctx.emu.default_per_page, "callback")))
    callbacks = sorted(ctx.emu.webhooks.callbacks.values(), key=lambda cb: cb.id)
    rows = [cb.render() for cb in callbacks[(page - 1) * per_page : page * per_page]]
    result = {"callbacks": rows, "page": page, "pages": math.ceil(len(callbacks) / per_page), "per_page": per_page}
    result["total"] = len(callbacks)
    return JSONResponse({"response": {"result": result}})


def callbacks_create(ctx: Ctx) -> Response:
    scopes = _events_access(ctx)
    inner = _callback_body(ctx)
    cb = ctx.emu.webhooks.create(inner.get("event"), inner.get("uri"), scopes)
    return JSONResponse({"response": {"result": {"callback": cb.render()}}})


def callback_get(ctx: Ctx) -> Response:
    _events_access(ctx)
    return JSONResponse({"response": {"result": {"callback": ctx.emu.webhooks.get(int(ctx.params["id"])).render()}}})


def callback_update(ctx: Ctx) -> Response:
    _events_access(ctx)
    inner = _callback_body(ctx)
    hub, callback_id = ctx.emu.webhooks, int(ctx.params["id"])
    if inner.get("resend") is True:
        cb = hub.resend(callback_id)
    elif "verifier" in inner:
        cb = hub.verify(callback_id, inner["verifier"])
    else:
        hub.get(callback_id)
        raise EventsError(
            "The request was well-formed but was unable to be followed due to semantic errors.",
            status=422,
            details=['callback: give {"verifier": …} to verify or {"resend": true} to resend the verification'],
        )
    return JSONResponse({"response": {"result": {"callback": cb.render()}}})


def callback_delete(ctx: Ctx) -> Response:
    _events_access(ctx)
    ctx.emu.webhooks.delete(int(ctx.params["id"]))
    return Response(status_code=204)
