"""FreshBooks error answers -> the provider's typed errors.

FreshBooks answers errors in several shapes (see ``shared/api/freshbooks.md``): the accounting envelope
``{"response": {"errors": [{"errno", "field", "message", "object"}]}}``, newer APIs' ``{"errno", "message",
"details"}``, OAuth's ``{"error", "error_description"}``, and plain text or HTML from proxies. Every one of
them becomes an :class:`ApiError` (or subclass) whose message says what FreshBooks said and what to do;
an unexpected shape never crashes the parser. Messages pass through the HTTP client's redaction, so a
token echoed back by the server never reaches a log or a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import requests

from airflow_provider_fbmkto.exceptions import ApiError, AuthError, RateLimited, ReauthorizationRequired

_SCOPE_RE = re.compile(r"\b(?:user|admin):[a-z_]+:(?:read|write)\b")
_MAX_TEXT = 300
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")


def error_detail(response: requests.Response) -> tuple[str, str | None]:
    """``(message, code)`` from any FreshBooks error body; the code is ``errno`` or the OAuth ``error``."""
    try:
        body: Any = response.json()
    except ValueError:
        return (_plain(response.text or "") or response.reason or f"HTTP {response.status_code}", None)
    return _from_json(body) or (response.reason or f"HTTP {response.status_code}", None)


def _plain(text: str) -> str:
    """A proxy's HTML error page as its title (or its text without tags); plain text as it is, shortened."""
    title = _TITLE_RE.search(text)
    if title:
        text = title.group(1)
    text = " ".join(_TAG_RE.sub(" ", text).split())
    return text[:_MAX_TEXT]


def _from_json(body: Any) -> tuple[str, str | None] | None:
    if not isinstance(body, dict):
        return (str(body)[:_MAX_TEXT], None) if body not in (None, "") else None
    inner = body.get("response")
    if isinstance(inner, dict) and isinstance(inner.get("errors"), list):
        messages, code = [], None
        for err in inner["errors"]:
            if not isinstance(err, dict):
                messages.append(str(err))
                continue
            text = str(err.get("message") or err.get("errno") or "error")
            if err.get("field"):
                text = f"{text} (field {err['field']})"
            messages.append(text)
            if code is None and err.get("errno") is not None:
                code = str(err["errno"])
        return ("; ".join(messages)[:_MAX_TEXT] or "error", code)
    if "error" in body and isinstance(body["error"], str):
        description = body.get("error_description") or body.get("message")
        text = f"{body['error']}: {description}" if description else body["error"]
        return (text[:_MAX_TEXT], body["error"])
    if "message" in body or "errno" in body:
        text = str(body.get("message") or "error")
        details = body.get("details")
        if details:
            text = f"{text} ({_details(details)})"
        code = body.get("errno", body.get("code"))
        return (text[:_MAX_TEXT], str(code) if code is not None else None)
    if isinstance(body.get("error"), dict):
        return _from_json(body["error"])
    return None


def _details(details: Any) -> str:
    if isinstance(details, list):
        parts = []
        for d in details:
            if isinstance(d, dict):
                parts.append(str(d.get("reason") or d.get("message") or d.get("value") or d))
            else:
                parts.append(str(d))
        return "; ".join(parts)
    return str(details)


def scopes_in(text: str) -> list[str]:
    """OAuth scope names mentioned in ``text``, in order, without repeats."""
    return list(dict.fromkeys(_SCOPE_RE.findall(text)))


def api_error(
    response: requests.Response,
    *,
    what: str,
    conn_id: str,
    redact: Callable[[str], str],
    needed_scope: str | None = None,
    granted_scopes: Iterable[str] = (),
) -> ApiError:
    """The typed error for a FreshBooks answer that is not a success.

    :param what: the call in words, e.g. ``"GET invoices"`` (no query string, no ids that matter).
    :param needed_scope: the scope this call needs, named in a 403 when FreshBooks does not name it.
    :param granted_scopes: the scopes of the stored token, to tell which one is missing.
    """
    status = response.status_code
    message, code = error_detail(response)
    message = redact(message)
    prefix = f"FreshBooks {what} failed with HTTP {status}: {message}"
    fix = f"fbmkto authorize --conn-id {conn_id}"
    if status == 401:
        return AuthError(
            f"{prefix}. The access token was refused; if this persists, re-authorize: {fix}",
            status=status,
            code=code,
        )
    if status == 403:
        granted = set(granted_scopes)
        mentioned = scopes_in(message)
        missing = [s for s in mentioned if s not in granted] if granted else []
        if not missing and needed_scope and needed_scope not in granted:
            missing = [needed_scope]
        if missing:
            names = " ".join(missing)
            return AuthError(
                f"{prefix}. Missing OAuth scope {names!r}: add it to the 'scopes' extra of connection "
                f"{conn_id!r} (and to the FreshBooks app), then re-authorize: {fix}",
                status=status,
                code=code,
            )
        return AuthError(f"{prefix}. Check the app's scopes and the user's role, then: {fix}", status=status, code=code)
    if status == 429:
        return RateLimited(
            f"{prefix}. FreshBooks is rate limiting; retry later", status=status, code=code, retryable=True
        )
    if status >= 500:
        return ApiError(f"{prefix}. FreshBooks is failing; retry later", status=status, code=code, retryable=True)
    return ApiError(prefix, status=status, code=code)


def token_error(response: requests.Response, *, conn_id: str, grant: str, redact: Callable[[str], str]) -> ApiError:
    """The typed error for a failed ``/auth/oauth/token`` call.

    ``invalid_grant`` on a refresh means the single-use refresh token is spent or revoked: only a new
    authorization helps, so it is :class:`ReauthorizationRequired` and never retried.
    """
    message, code = error_detail(response)
    message = redact(message)
    status = response.status_code
    fix = f"fbmkto authorize --conn-id {conn_id}"
    lowered = f"{code or ''} {message}".lower()
    if grant == "refresh_token" and (
        "invalid_grant" in lowered or (status in (400, 401) and "refresh" in lowered and "client" not in lowered)
    ):
        return ReauthorizationRequired(
            f"FreshBooks refresh token for connection {conn_id!r} is spent or revoked; re-authorize: {fix}",
            status=status,
            code=code or "invalid_grant",
        )
    if grant == "authorization_code" and "invalid_grant" in lowered:
        return AuthError(
            f"FreshBooks refused the authorization code ({message}); codes are single-use and live about "
            f"5 minutes, and the redirect URI must match the app's. Get a new one: {fix}",
            status=status,
            code=code,
        )
    if "invalid_client" in lowered or status == 401:
        return AuthError(
            f"FreshBooks refused the client credentials of connection {conn_id!r} ({message}); check the "
            "connection's login (client id) and password (client secret)",
            status=status,
            code=code,
        )
    if status == 429 or status >= 500:
        return ApiError(
            f"FreshBooks token endpoint failed with HTTP {status}: {message}; retry later",
            status=status,
            code=code,
            retryable=True,
        )
    return AuthError(f"FreshBooks token request failed with HTTP {status}: {message}", status=status, code=code)
