"""The ASGI app: size limits, identity, auth, limits, faults, latency, dispatch, and the call log.

Handlers are async so that many calls can be in flight at once (``latency`` and stall faults sleep with
``asyncio.sleep``); model operations are short and take the model's lock.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from airflow_provider_fbmkto.testing.marketo import routes
from airflow_provider_fbmkto.testing.marketo.errors import (
    AccessTokenInvalid,
    InvalidContentType,
    InvalidJson,
    MarketoError,
    MethodNotSupported,
    ResourceNotFound,
    error_for,
)
from airflow_provider_fbmkto.testing.marketo.faults import GARBLED, HTTP_STATUSES, MARKETO_CODES, Fault, FaultQueue
from airflow_provider_fbmkto.testing.marketo.fields import iso
from airflow_provider_fbmkto.testing.marketo.handlers import (
    ApiRequest,
    Envelope,
    RestHandlers,
    envelope_json,
    error_json,
    record_codes,
    request_id,
)
from airflow_provider_fbmkto.testing.marketo.limits import QUOTA_EXEMPT_CODES
from airflow_provider_fbmkto.testing.marketo.models import MarketoModel

MAX_URL_BYTES = 8 * 1024
MAX_BODY_BYTES = 1024 * 1024
SECRET_PARAMS = frozenset({"client_secret", "access_token"})
_REASONS = {413: "Request Entity Too Large", 414: "Request-URI Too Long", 500: "Internal Server Error"}
_REASONS |= {502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class CallRecord:
    """One request as the emulator saw it (control-API calls are not logged).

    :param method: the HTTP method sent; ``effective_method`` is ``GET`` for ``POST`` + ``_method=GET``.
    :param query: URL query plus, for ``_method=GET``, the form fields; secrets shown as ``***``.
    :param codes: response-level Marketo error codes answered; ``record_codes`` those of skipped records.
    :param in_flight_at_start: REST calls already in flight when this one arrived.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    codes: list[str]
    at: datetime
    in_flight_at_start: int
    effective_method: str = ""
    record_codes: list[str] = field(default_factory=list)
    request_id: str | None = None
    bearer: bool = False
    duration: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "effectiveMethod": self.effective_method,
            "path": self.path,
            "query": self.query,
            "body": self.body,
            "status": self.status,
            "codes": self.codes,
            "recordCodes": self.record_codes,
            "at": iso(self.at),
            "inFlightAtStart": self.in_flight_at_start,
            "requestId": self.request_id,
            "bearer": self.bearer,
            "duration": round(self.duration, 4),
        }


@dataclass
class Outcome:
    response: Response
    codes: list[str] = field(default_factory=list)
    record_codes: list[str] = field(default_factory=list)
    request_id: str | None = None


#: what :meth:`MarketoApp._fault` answers for ``garbled``: serve the call, then cut its answer (see :func:`_cut`)
_GARBLE = Outcome(Response(b""))


def _cut(outcome: Outcome) -> Outcome:
    """The served answer cut to half its body, still 200 with a JSON content type (the call has been applied)."""
    body = bytes(outcome.response.body)
    cut = Response(body[: len(body) // 2], status_code=200, media_type="application/json")
    return Outcome(cut, outcome.codes, outcome.record_codes, outcome.request_id)


def _raw(status: int) -> Response:
    text = f"<html><head><title>{status} {_REASONS.get(status, '')}</title></head><body></body></html>"
    return Response(text, status_code=status, media_type="text/html")


class MarketoApp:
    """ASGI callable serving one :class:`MarketoModel`; ``control`` handles ``/_emulator/...``."""

    def __init__(
        self,
        model: MarketoModel,
        faults: FaultQueue[Fault],
        *,
        client_id: str,
        client_secret: str,
        munchkin_id: str,
        latency: float = 0.0,
        timeout_seconds: float = 30.0,
        slow_seconds: float = 2.0,
        control: Callable[[Request, str], Any] | None = None,
    ) -> None:
        self.model = model
        self.faults = faults
        self.client_id = client_id
        self.client_secret = client_secret
        self.munchkin_id = munchkin_id
        self.latency = latency
        self.timeout_seconds = timeout_seconds
        self.slow_seconds = slow_seconds
        self.control = control
        self.handlers = RestHandlers(model, client_id=client_id)
        self.stopping = threading.Event()
        self.calls: list[CallRecord] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.max_in_flight = 0

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` without blocking the loop; cut short when the server stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.stopping.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path: str = scope["path"]
        if path == routes.CONTROL_PREFIX or path.startswith(routes.CONTROL_PREFIX + "/"):
            assert self.control is not None
            response: Response = await self.control(request, path)
            await response(scope, receive, send)
            return
        started, at = time.monotonic(), self.model.clock()
        is_rest = path != routes.IDENTITY_PATH
        with self._lock:
            in_flight_at_start = self._in_flight
            if is_rest:
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
        record = CallRecord(scope["method"], path, {}, None, 0, [], at, in_flight_at_start)
        try:
            outcome = await self._serve(request, path, record)
        finally:
            if is_rest:
                with self._lock:
                    self._in_flight -= 1
        record.status = outcome.response.status_code
        record.codes, record.record_codes = outcome.codes, outcome.record_codes
        record.request_id, record.duration = outcome.request_id, time.monotonic() - started
        with self._lock:
            self.calls.append(record)
        await outcome.response(scope, receive, send)

    async def _serve(self, request: Request, path: str, record: CallRecord) -> Outcome:
        raw_target = request.scope.get("raw_path", path.encode()) + b"?" + request.scope.get("query_string", b"")
        body = await request.body()
        query = list(parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        content_type = request.headers.get("content-type", "").lower()
        form: list[tuple[str, str]] = []
        if body and content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        method = request.method
        form_get = method == "POST" and any(k == "_method" and v.upper() == "GET" for k, v in query + form)
        pairs = query + form if form_get or path == routes.IDENTITY_PATH else query
        if form_get:
            method = "GET"
        multi: dict[str, list[str]] = {}
        for k, v in pairs:
            multi.setdefault(k, []).append(v)
        # A repeated parameter (``fields=a&fields=b``) reads as the comma-joined list, as Marketo binds it.
        params = {k: ",".join(v) for k, v in multi.items() if k != "_method"}
        record.effective_method = method
        record.query = {k: ("***" if k in SECRET_PARAMS else v) for k, v in params.items()}
        record.bearer = request.headers.get("authorization", "").lower().startswith("bearer ")
        if len(raw_target) > MAX_URL_BYTES:
            return Outcome(_raw(414))
        if len(body) > MAX_BODY_BYTES:
            return Outcome(_raw(413))
        req = ApiRequest(method, path, params, multi, headers=request.headers)
        if form:
            record.body = {k: ("***" if k in SECRET_PARAMS else v) for k, v in form}
            if not form_get:
                req.body = dict(form)
        elif body:
            try:
                req.body = record.body = json.loads(body)
            except ValueError:
                req.body = InvalidJson()
        if path == routes.IDENTITY_PATH:
            return await self._identity(req)
        return await self._rest(req, content_type)

    def _error(self, err: MarketoError) -> Outcome:
        rid = request_id(self.model.clock)
        return Outcome(JSONResponse(error_json(err, rid), status_code=err.http_status), [err.code], [], rid)

    async def _fault(self, path: str) -> Outcome | None:
        """Apply the first matching injected fault: an answer to send now, or ``None`` to go on (after stalls)."""
        taken: Fault | str | None = self.faults.take(path)  # tests may script ``take`` to answer plain kinds
        if taken is None:
            return None
        fault = Fault(taken, 0) if isinstance(taken, str) else taken
        kind = fault.kind
        if kind in MARKETO_CODES:
            message = fault.message or (self.model.limits.rate_message() if kind == "606" else None)
            return self._error(error_for(kind, message))
        if kind in HTTP_STATUSES:
            return Outcome(_raw(int(kind)))
        if kind == GARBLED:
            return _GARBLE
        if kind == "timeout":
            await self.pause(self.timeout_seconds)
        elif kind == "slow":
            await self.pause(self.slow_seconds)
        return None

    async def _identity(self, req: ApiRequest) -> Outcome:
        faulted = await self._fault(req.path)
        if faulted is _GARBLE:
            return _cut(await self._token(req))
        if faulted is not None:
            return faulted
        return await self._token(req)

    async def _token(self, req: ApiRequest) -> Outcome:
        if req.method not in ("GET", "POST"):
            return Outcome(JSONResponse({"error": "invalid_request", "error_description": "Use GET"}, 405))
        params = req.params
        if params.get("grant_type") != "client_credentials":
            body = {"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"}
            return Outcome(JSONResponse(body, 400))
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            body = {"error": "unauthorized", "error_description": "Bad client credentials"}
            return Outcome(JSONResponse(body, 401))
        token, expires_in = self.model.tokens.issue()
        scope = self.model.limits.api_user  # Marketo: "the owning API-only user of the custom service"
        return Outcome(
            JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": expires_in, "scope": scope})
        )

    async def _rest(self, req: ApiRequest, content_type: str) -> Outcome:
        if "access_token" in req.params:
            self.model.limits.count_in_window()
            return self._error(AccessTokenInvalid())
        auth = req.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        try:
            self.model.tokens.check(token)
        except MarketoError as err:
            self.model.limits.count_in_window()  # out of the quota (601/602), not out of the rate window
            return self._error(err)
        try:
            admitted_at = self.model.limits.admit()
        except MarketoError as err:
            return self._error(err)
        outcome: Outcome | None = None
        try:
            outcome = await self._admitted(req, content_type)
            return outcome
        finally:
            refund = outcome is None or bool(set(outcome.codes) & QUOTA_EXEMPT_CODES)
            self.model.limits.release(admitted_at, refund_quota=refund)

    async def _admitted(self, req: ApiRequest, content_type: str) -> Outcome:
        faulted = await self._fault(req.path)
        if faulted is _GARBLE:
            return _cut(await self._dispatch(req, content_type))
        if faulted is not None:
            return faulted
        return await self._dispatch(req, content_type)

    async def _dispatch(self, req: ApiRequest, content_type: str) -> Outcome:
        if self.latency > 0:
            await self.pause(self.latency)
        route, path_params, known = routes.resolve(routes.REST_ROUTES, req.method, req.path)
        if route is None:
            return self._error(MethodNotSupported() if known else ResourceNotFound())
        req.path_params = path_params
        if route.json_body and req.body is not None:
            if req.method != "GET" and "json" not in content_type:
                return self._error(InvalidContentType(f"Invalid Content Type '{content_type}'; use application/json"))
            if isinstance(req.body, MarketoError):
                return self._error(req.body)
        elif isinstance(req.body, MarketoError):
            req.body = None
        try:
            answer = getattr(self.handlers, route.handler)(req)
        except MarketoError as err:
            return self._error(err)
        if isinstance(answer, Envelope):
            rid = request_id(self.model.clock)
            return Outcome(JSONResponse(envelope_json(answer, rid)), [], record_codes(answer.result), rid)
        return Outcome(answer)
