"""Path → handler table (moto's ``urls.py``) and the ASGI dispatcher that records calls and injects faults."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import control, handlers
from .errors import ERRNO_NOT_FOUND, EmulatorError, TokenRejected
from .faults import error_response
from .handlers import Ctx, Handler

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from .emulator import FreshBooksEmulator

_ACCT = r"/accounting/account/(?P<account_id>[^/]+)/(?P<resource>users/clients|invoices/invoices|payments/payments)"
_EVENTS = r"/events/account/(?P<account_id>[^/]+)/events/callbacks"
_KIND = r"(?P<kind>[a-z_]+)"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    family: str


def _r(method: str, path: str, handler: Handler, family: str) -> Route:
    return Route(method, re.compile(f"^{path}$"), handler, family)


API_ROUTES: list[Route] = [
    _r("GET", "/oauth/authorize", handlers.authorize, "oauth"),
    _r("POST", "/auth/oauth/token", handlers.token, "oauth"),
    _r("GET", "/auth/api/v1/users/me", handlers.users_me, "identity"),
    _r("GET", _ACCT, handlers.accounting_list, "accounting"),
    _r("GET", _ACCT + r"/(?P<id>\d+)", handlers.accounting_get, "accounting"),
    _r("GET", _EVENTS, handlers.callbacks_list, "events"),
    _r("POST", _EVENTS, handlers.callbacks_create, "events"),
    _r("GET", _EVENTS + r"/(?P<id>\d+)", handlers.callback_get, "events"),
    _r("PUT", _EVENTS + r"/(?P<id>\d+)", handlers.callback_update, "events"),
    _r("DELETE", _EVENTS + r"/(?P<id>\d+)", handlers.callback_delete, "events"),
]

CONTROL_ROUTES: list[Route] = [
    _r("GET", "/_emulator/?", control.state, "control"),
    _r("POST", "/_emulator/reset", control.reset, "control"),
    _r("POST", "/_emulator/seed", control.seed, "control"),
    _r("POST", f"/_emulator/records/{_KIND}", control.record_create, "control"),
    _r("PATCH", f"/_emulator/records/{_KIND}/(?P<id>[^/]+)", control.record_update, "control"),
    _r("DELETE", f"/_emulator/records/{_KIND}/(?P<id>[^/]+)", control.record_delete, "control"),
    _r("POST", "/_emulator/invoices/(?P<id>[^/]+)/send", control.invoice_send, "control"),
    _r("POST", "/_emulator/faults", control.faults_add, "control"),
    _r("DELETE", "/_emulator/faults", control.faults_clear, "control"),
    _r("GET", "/_emulator/calls", control.calls_list, "control"),
    _r("DELETE", "/_emulator/calls", control.calls_clear, "control"),
    _r("POST", "/_emulator/code", control.code, "control"),
    _r("POST", "/_emulator/expire-tokens", control.expire_tokens, "control"),
    _r("POST", "/_emulator/revoke", control.revoke, "control"),
    _r("GET", "/_emulator/deliveries", control.deliveries, "control"),
    _r("POST", "/_emulator/clock", control.clock, "control"),
    _r("GET", "/_emulator/behaviour", control.behaviour, "control"),
    _r("POST", "/_emulator/behaviour", control.behaviour, "control"),
]


def family_of(path: str) -> str:
    if path.startswith("/_emulator"):
        return "control"
    if path.startswith("/accounting/"):
        return "accounting"
    if path.startswith("/events/"):
        return "events"
    if path.startswith("/auth/api/"):
        return "identity"
    return "oauth"


@dataclass(frozen=True)
class CallRecord:
    """One API request the emulator received (control-API calls are not recorded).

    ``body`` is the parsed JSON or form body exactly as sent, secrets included (tests assert on them);
    ``fault`` names the injected fault that answered it, if any.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any] | None
    status: int
    at: datetime
    has_auth: bool
    fault: str | None = None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


def parse_body(content_type: str, raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """JSON or form body → dict; ``(None, reason)`` when it is neither."""
    if not raw.strip():
        return None, None
    media = content_type.split(";", 1)[0].strip().lower()
    text = raw.decode("utf-8", errors="replace")
    if media == "application/x-www-form-urlencoded":
        return dict(parse_qsl(text, keep_blank_values=True)), None
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        if media == "application/json" or "=" not in text:
            return None, f"invalid JSON ({exc})"
        return dict(parse_qsl(text, keep_blank_values=True)), None
    if not isinstance(parsed, dict):
        return None, "the body must be a JSON object"
    return parsed, None


def _match(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    path_known = False
    for route in routes:
        found = route.pattern.match(path)
        if found:
            path_known = True
            if route.method == method:
                return route, found.groupdict(), True
    return None, {}, path_known


def dispatch(routes: list[Route], ctx: Ctx) -> Response:
    route, params, path_known = _match(routes, ctx.method, ctx.path)
    family = family_of(ctx.path)
    if route is None:
        status, text = (405, "Method Not Allowed") if path_known else (404, "Not Found")
        message = f"{text}: {ctx.method} {ctx.path} (the emulator serves clients, invoices, payments, "
        message += "users/me, the token endpoint and webhook callbacks)"
        if family == "control":
            return JSONResponse({"error": message, "field": None}, status)
        if family == "accounting":
            error = {"errno": ERRNO_NOT_FOUND, "field": "path", "message": message, "object": "resource"}
            return JSONResponse({"response": {"errors": [error]}}, status)
        if family == "events":
            return JSONResponse({"errno": status, "message": message}, status)
        return JSONResponse(
            {"error": "not_found" if status == 404 else "invalid_request", "error_description": message}, status
        )
    ctx.params = params
    try:
        return route.handler(ctx)
    except EmulatorError as exc:
        return handlers.render_error(exc, route.family)


class EmulatorApp:
    """The ASGI app: parse → (faults) → route → handler → record the call."""

    def __init__(self, emu: FreshBooksEmulator) -> None:
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw = await request.body()
        headers = Headers(scope=scope)
        body, body_error = parse_body(headers.get("content-type", ""), raw)
        path = scope["path"]
        ctx = Ctx(
            emu=self.emu,
            method=scope["method"].upper(),
            path=path,
            query=parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
            headers=headers,
            body=body,
            body_error=body_error,
        )
        if family_of(path) == "control":
            await dispatch(CONTROL_ROUTES, ctx)(scope, receive, send)
            return
        generation = self.emu.generation
        fault = self.emu.faults.take(path)
        response: Response | None = None
        if fault is not None:
            if fault.kind in ("slow", "timeout"):
                await asyncio.sleep(fault.delay)
            if fault.kind == "401":
                presented = self.emu.oauth.bearer(ctx.authorization)
                if presented is not None:  # expire that token only (None would mean "all of them")
                    self.emu.oauth.expire(presented)
                response = handlers.render_error(
                    TokenRejected("The access token expired; refresh it."), family_of(path)
                )
            elif fault.kind != "slow":
                response = error_response(fault)
        if response is None:
            response = dispatch(API_ROUTES, ctx)
        self.emu.record_call(
            generation,
            CallRecord(
                method=ctx.method,
                path=path,
                query=ctx.query,
                body=body,
                status=response.status_code,
                at=self.emu.now(),
                has_auth=ctx.authorization is not None,
                fault=fault.kind if fault is not None else None,
            ),
        )
        await response(scope, receive, send)
