"""Airflow's own auth for the status page, and Airflow's public REST API for its "replay failed" action.

The api-server mounts plugin apps without any authentication, so the page checks the caller itself, the way
Airflow's own API does: the JWT from the ``Authorization: Bearer`` header, else from the ``_token`` cookie the
UI login sets, validated by the configured auth manager (``get_user_from_token``), which also decides what the
user may see (``is_authorized_dag``). The replay action never uses credentials of its own: it forwards the
user's token to ``POST /api/v2/dags/{dag_id}/dagRuns``, so Airflow authorizes the trigger as if the user had
pressed "Trigger" in its UI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request

from airflow_provider_fbmkto.exceptions import TransportError
from airflow_provider_fbmkto.http import HttpClient, RetryPolicy

log = logging.getLogger(__name__)

COOKIE = "_token"
#: Overrides where the replay action reaches Airflow's REST API (e.g. ``http://airflow-apiserver:8080``).
API_URL_ENV = "FBMKTO_AIRFLOW_API_URL"
MOUNT = "/fbmkto"


@dataclass(frozen=True)
class Viewer:
    """An authenticated Airflow user looking at the page.

    :param name: the user's name (shown on the page).
    :param token: the user's own JWT (forwarded to Airflow's API; never shown or logged).
    :param can_read: DAG id -> whether the user may read that DAG (and so its account's status).
    """

    name: str
    token: str = field(repr=False)
    can_read: Callable[[str], bool] = field(repr=False, default=lambda _dag_id: True)


class Authenticator(Protocol):
    """Who is asking, and where to send them to log in."""

    def viewer(self, request: Request) -> Awaitable[Viewer | None]: ...

    def login_url(self, request: Request) -> str | None: ...


def request_token(request: Request) -> str | None:
    """The JWT of the request: an explicit bearer header wins over the UI's session cookie (as in Airflow)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE) or None


class AirflowAuth:
    """:class:`Authenticator` backed by the api-server's auth manager (works with any auth manager)."""

    async def viewer(self, request: Request) -> Viewer | None:
        token = request_token(request)
        if not token:
            return None
        from airflow.api_fastapi.app import get_auth_manager
        from fastapi import HTTPException
        from jwt import InvalidTokenError

        manager = get_auth_manager()
        try:
            user = await manager.get_user_from_token(token)
        except (InvalidTokenError, HTTPException, ValueError, KeyError, TypeError):
            return None

        def can_read(dag_id: str) -> bool:
            from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

            return bool(manager.is_authorized_dag(method="GET", user=user, details=DagDetails(id=dag_id)))

        return Viewer(name=str(user.get_name()), token=token, can_read=can_read)

    def login_url(self, request: Request) -> str | None:
        from airflow.api_fastapi.app import get_auth_manager

        try:
            return str(get_auth_manager().get_url_login(next_url=str(request.url)))
        except Exception:  # an auth manager without a login page: answer 401 instead
            log.debug("fbmkto status: the auth manager has no login URL", exc_info=True)
            return None


def api_base_url(request: Request, environ: dict[str, str] | None = None) -> str:
    """Where this api-server's REST API is reachable from inside it.

    ``FBMKTO_AIRFLOW_API_URL`` when set; else the address and port that accepted this request (the api-server
    itself, reachable whatever proxy is in front of it) plus the api-server's root path.
    """
    env = os.environ if environ is None else environ
    override = env.get(API_URL_ENV, "").strip()
    if override:
        return override.rstrip("/")
    scheme = request.url.scheme or "http"
    server = request.scope.get("server")
    if server and server[0]:
        host, port = str(server[0]), server[1]
        host = f"[{host}]" if ":" in host else host
        netloc = f"{host}:{port}" if port else host
    else:  # e.g. a test client without a socket
        netloc = request.url.netloc
    root = str(request.scope.get("root_path") or "").rstrip("/")
    if root.endswith(MOUNT):
        root = root[: -len(MOUNT)]
    return f"{scheme}://{netloc}{root}"


@dataclass(frozen=True)
class TriggerResult:
    """What Airflow answered to a trigger request.

    :param ok: a run was created.
    :param status: HTTP status (0 when Airflow could not be reached).
    :param dag_run_id: the new run's id when ``ok``.
    :param state: the new run's state (``queued``) when ``ok``.
    :param message: one sentence for the page.
    """

    ok: bool
    status: int
    dag_run_id: str | None
    state: str | None
    message: str


def _never_retry(_response: Any) -> None:
    return None


class AirflowApi:
    """The piece of Airflow's public REST API the page uses, called with the viewer's own token.

    :param timeout: ``(connect, read)`` seconds.
    """

    def __init__(self, *, timeout: tuple[float, float] = (5.0, 30.0)) -> None:
        self.timeout = timeout

    def trigger_dag_run(
        self, base_url: str, dag_id: str, *, token: str, conf: dict[str, Any], note: str | None = None
    ) -> TriggerResult:
        """``POST {base_url}/api/v2/dags/{dag_id}/dagRuns`` with ``conf``; no logical date (a manual run).

        A connect failure is retried once (nothing reached Airflow); an answer never is (a run may exist).
        """
        client = HttpClient(base_url, policy=RetryPolicy(attempts=1, base=0.2, cap=1.0), timeout=self.timeout)
        client.add_secret(token)
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if note:
            body["note"] = note
        try:
            response = client.request(
                "POST",
                f"/api/v2/dags/{dag_id}/dagRuns",
                json=body,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                classify=_never_retry,
            )
        except TransportError as exc:
            return TriggerResult(
                False, 0, None, None, f"could not reach Airflow's API at {base_url} ({exc}); set {API_URL_ENV}"
            )
        finally:
            client.close()
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code in (200, 201) and isinstance(data, dict) and data.get("dag_run_id"):
            return TriggerResult(
                True,
                response.status_code,
                str(data["dag_run_id"]),
                str(data.get("state") or ""),
                f"run {data['dag_run_id']} of {dag_id} is {data.get('state') or 'created'}",
            )
        detail = data.get("detail") if isinstance(data, dict) else None
        text = client.redact(detail if isinstance(detail, str) else str(detail or response.reason or ""))[:300]
        hints = {
            401: "your Airflow session expired; log in again",
            403: f"Airflow does not allow you to trigger {dag_id}",
            404: f"Airflow does not know DAG {dag_id}; check the DAG file parsed (airflow dags list-import-errors)",
            409: "a run with that id exists already",
        }
        hint = hints.get(response.status_code, "see the api-server log")
        return TriggerResult(
            False, response.status_code, None, None, f"Airflow answered HTTP {response.status_code}: {hint} ({text})"
        )
