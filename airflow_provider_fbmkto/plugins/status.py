"""The sync status page, served by the plugin's FastAPI app at ``/fbmkto/status`` and linked into Airflow's UI.

* ``GET /status`` — one row per configured account (last successful window; written/skipped/failed per kind in
  the last run and the last 7 days; Marketo calls today against the budget; FreshBooks authorization with the
  exact fix command), a chart of rows written per day and kind, and the skipped/failed rows with Marketo's
  reasons, filtered by ``account``, ``kind`` and ``status`` query parameters.
* ``POST /status/replay`` — triggers ``fbmkto_sync__<account>`` with ``{"replay_failed": true}`` through
  Airflow's REST API with the user's own token.
* ``POST /status/check-token`` — asks FreshBooks whether the stored authorization still works (``users/me``
  with the stored access token; the single-use refresh token is never spent here).

Access goes through Airflow's auth (:mod:`.status_airflow`): no valid Airflow session, no page (a browser is
sent to Airflow's login, anything else gets 401), and a user sees only the accounts whose DAG they may read.
The forms carry a double-submit CSRF token and the page allows no script at all (Content-Security-Policy).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from airflow_provider_fbmkto.plugins.status_airflow import (
    MOUNT,
    AirflowApi,
    AirflowAuth,
    Authenticator,
    Viewer,
    api_base_url,
)
from airflow_provider_fbmkto.plugins.status_data import (
    KINDS,
    REPLAYABLE,
    AccountsFile,
    AccountStatus,
    BudgetStatus,
    TokenHealth,
    account_status,
    event_failures,
    failure_rows,
    load_accounts,
    probe_token,
    utcnow,
)
from airflow_provider_fbmkto.plugins.status_render import Notice, PageContext, events_section, failures_section, page
from airflow_provider_fbmkto.state_conn import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow_provider_fbmkto.state import StateDB
    from airflow_provider_fbmkto.sync.config_schema import AccountConfig

log = logging.getLogger(__name__)

CSRF_COOKIE = "fbmkto_csrf"
_CSRF_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
MAX_FORM = 4096
SECURITY_HEADERS = {
    # No script at all; inline styles and the inline SVG only; forms post back here; framed only by Airflow's UI.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _default_state(state_conn_id: str) -> Callable[[], StateDB]:
    def open_state() -> StateDB:
        from airflow_provider_fbmkto.state import StateDB

        return StateDB.from_airflow(conn_id=state_conn_id)

    return open_state


@dataclass
class StatusPage:
    """The page's collaborators; every one is replaceable in tests.

    :param auth: who is asking (default: Airflow's auth manager).
    :param state: opens the state DB.
    :param accounts: reads the accounts config.
    :param api: Airflow's REST API client for the replay action.
    :param api_url: request -> base URL of Airflow's REST API (default: this api-server itself).
    :param budget: Marketo conn id -> budget (default: read the connection and the state DB).
    :param probe: FreshBooks conn id -> live authorization check.
    :param clock: the current time (aware UTC).
    """

    state_conn_id: str = DEFAULT_CONN_ID
    auth: Authenticator = field(default_factory=AirflowAuth)
    state: Callable[[], StateDB] | None = None
    accounts: Callable[[], AccountsFile] = load_accounts
    api: AirflowApi = field(default_factory=AirflowApi)
    api_url: Callable[[Request], str] = api_base_url
    budget: Callable[[StateDB, str, datetime], BudgetStatus] | None = None
    probe: Callable[[str], TokenHealth] | None = None
    clock: Callable[[], datetime] = utcnow

    def open_state(self) -> StateDB:
        return (self.state or _default_state(self.state_conn_id))()


# ------------------------------------------------------------------------------------------------ helpers


def _paths(request: Request) -> tuple[str, str]:
    """(this app's URL path, Airflow UI's URL path), from the mount point."""
    base = str(request.scope.get("root_path") or "").rstrip("/")
    root = base[: -len(MOUNT)] if base.endswith(MOUNT) else base
    return base, root


def _csrf_of(request: Request) -> str:
    value = request.cookies.get(CSRF_COOKIE, "")
    return value if _CSRF_RE.match(value) else secrets.token_urlsafe(32)


def _html(body: str, *, status: int, csrf: str, request: Request) -> HTMLResponse:
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    base, _root = _paths(request)
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        path=base or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _choice(value: str | None, allowed: tuple[str, ...] | list[str]) -> str | None:
    return value if value in allowed else None


async def _form(request: Request) -> dict[str, str] | None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > MAX_FORM:
        return None
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        return None


def _same_origin(request: Request) -> bool:
    """A browser's ``Origin`` (when it sends one) must be this host: no cross-site form posts."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


# -------------------------------------------------------------------------------------------------- router


def build_status_router(status_page: StatusPage | None = None) -> APIRouter:
    """An ``APIRouter`` with the status page's routes bound to ``status_page`` (default collaborators)."""
    sp = status_page or StatusPage()
    router = APIRouter()

    async def authenticate(request: Request) -> Viewer | Response:
        viewer = await sp.auth.viewer(request)
        if viewer is not None:
            return viewer
        accepts_html = "text/html" in request.headers.get("accept", "")
        login = sp.auth.login_url(request) if request.method == "GET" and accepts_html else None
        if login:
            return RedirectResponse(login, status_code=302)
        return PlainTextResponse(
            "Airflow login required: sign in to Airflow's UI, or send an Airflow JWT as 'Authorization: Bearer …'",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer", **SECURITY_HEADERS},
        )

    def visible(viewer: Viewer, accounts: AccountsFile) -> list[AccountConfig]:
        return [a for a in accounts.accounts if viewer.can_read(a.dag_id)]

    def render(
        request: Request, viewer: Viewer, *, notice: Notice | None = None, status: int = 200, csrf: str | None = None
    ) -> HTMLResponse:
        accounts = sp.accounts()
        shown = visible(viewer, accounts)
        if accounts.accounts and not shown:
            return _html(
                "<!doctype html><title>Forbidden</title><p>You may not read any fbmkto sync DAG.</p>",
                status=403,
                csrf=csrf or _csrf_of(request),
                request=request,
            )
        q = request.query_params
        names = [a.name for a in shown]
        account = _choice(q.get("account"), names)
        kind = _choice(q.get("kind"), KINDS)
        state = _choice(q.get("status"), REPLAYABLE)
        now = sp.clock()
        db = sp.open_state()
        read_budget = sp.budget
        budget = None if read_budget is None else (lambda conn_id: read_budget(db, conn_id, now))
        statuses: list[AccountStatus] = [
            account_status(db, a, now=now, state_conn_id=sp.state_conn_id, budget=budget) for a in shown
        ]
        limits = {a.name: a.retry_skipped for a in shown}
        rows = failure_rows(db, [account] if account else names, kind=kind, status=state, retry_limits=limits)
        token = csrf or _csrf_of(request)
        base, root = _paths(request)
        ctx = PageContext(base=base, airflow_root=root, user=viewer.name, csrf=token, now=now)
        failures = failures_section(rows, ctx, accounts=names, account=account, kind=kind, status=state)
        failures += events_section(event_failures(db, [account] if account else names))
        body = page(ctx, statuses, failures, problems=accounts.problems, config_path=str(accounts.path), notice=notice)
        return _html(body, status=status, csrf=token, request=request)

    async def checked_post(request: Request) -> tuple[Viewer, AccountConfig, str] | Response:
        """Authenticate, check CSRF and origin, and find the account the form names (one it may read)."""
        who = await authenticate(request)
        if not isinstance(who, Viewer):
            return who
        form = await _form(request)
        if form is None:
            return PlainTextResponse("expected a small urlencoded form", status_code=400, headers=SECURITY_HEADERS)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = form.get("csrf", "")
        if not (_same_origin(request) and cookie and sent and hmac.compare_digest(cookie, sent)):
            return PlainTextResponse(
                "CSRF check failed: reload the status page and press the button again",
                status_code=403,
                headers=SECURITY_HEADERS,
            )
        accounts = await run_in_threadpool(sp.accounts)
        for acct in visible(who, accounts):
            if acct.name == form.get("account"):
                return who, acct, cookie
        return PlainTextResponse("unknown account", status_code=404, headers=SECURITY_HEADERS)

    @router.get("/status", include_in_schema=False)
    async def status(request: Request) -> Response:
        who = await authenticate(request)
        if not isinstance(who, Viewer):
            return who
        return await run_in_threadpool(render, request, who)

    @router.post("/status/replay", include_in_schema=False)
    async def replay(request: Request) -> Response:
        checked = await checked_post(request)
        if isinstance(checked, Response):
            return checked
        viewer, acct, csrf = checked
        result = await run_in_threadpool(
            sp.api.trigger_dag_run,
            sp.api_url(request),
            acct.dag_id,
            token=viewer.token,
            conf={"replay_failed": True},
            note=f"replay_failed requested by {viewer.name} from the fbmkto status page",
        )
        log.info("fbmkto status: %s asked to replay %s: HTTP %s", viewer.name, acct.dag_id, result.status)
        if result.ok:
            notice = Notice("ok", f"Replay queued: {result.message}. Skipped and failed rows are sent again.")
            code = 200
        else:
            notice = Notice("error", f"Replay of {acct.dag_id} not started: {result.message}")
            code = result.status if 400 <= result.status < 500 else 502
        return await run_in_threadpool(render, request, viewer, notice=notice, status=code, csrf=csrf)

    @router.post("/status/check-token", include_in_schema=False)
    async def check_token(request: Request) -> Response:
        checked = await checked_post(request)
        if isinstance(checked, Response):
            return checked
        viewer, acct, csrf = checked
        probe = sp.probe or (lambda conn_id: probe_token(conn_id, state_conn_id=sp.state_conn_id))
        health = await run_in_threadpool(probe, acct.freshbooks_conn_id)
        text = f"FreshBooks connection {acct.freshbooks_conn_id}: {health.message}"
        if health.fix:
            text += f" — run: {health.fix}"
        notice = Notice("ok" if health.level == "ok" else "error", text)
        return await run_in_threadpool(render, request, viewer, notice=notice, csrf=csrf)

    return router
