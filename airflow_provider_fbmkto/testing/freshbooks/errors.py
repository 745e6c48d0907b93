"""Typed errors of the FreshBooks emulator, one class per API error, each knowing its HTTP status.

FreshBooks answers errors in several shapes depending on the API family; the handlers render each error in
the shape of the family the request went to (see ``handlers.render_error``):

* OAuth and identity (``/auth/…``, ``/oauth/…``): ``{"error": …, "error_description": …}``
* accounting (``/accounting/…``): ``{"response": {"errors": [{"errno", "field", "message", "object", "value"}]}}``
* events (``/events/…``): ``{"errno": …, "message": …, "details": [...]}``
* control API (``/_emulator/…``): ``{"error": …, "field": …}``
"""

from __future__ import annotations

#: accounting ``errno`` values. 1012 (not found) is the code FreshBooks' own SDK fixtures show; the others are
#: the emulator's choice (FreshBooks does not document a table) and are stable so tests can pin them.
ERRNO_NOT_FOUND = 1012
ERRNO_UNAUTHORIZED = 1001
ERRNO_FORBIDDEN = 1003
ERRNO_INVALID_VALUE = 2001


class EmulatorError(Exception):
    """Base of every error the emulator answers with; ``status`` is the HTTP status."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- OAuth -------------------------------------------------------------------------------------------------


class OAuthError(EmulatorError):
    """An RFC 6749 error: ``error`` is the OAuth error code."""

    error = "invalid_request"


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    status = 401
    error = "invalid_client"


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


# --- access checks (rendered per API family) ---------------------------------------------------------------


class TokenRejected(EmulatorError):
    """No bearer token, an unknown one or an expired one: 401."""

    status = 401


class ScopeMissing(EmulatorError):
    """The token lacks the scope the endpoint needs: 403, naming the granted and the needed scopes."""

    status = 403

    def __init__(self, granted: tuple[str, ...], needed: str) -> None:
        granted_text = " ".join(granted) or "(none)"
        super().__init__(
            f"insufficient scope: this call needs '{needed}'; the access token was granted '{granted_text}'"
        )
        self.granted = granted
        self.needed = needed


# --- accounting ----------------------------------------------------------------------------------------------


class AccountingError(EmulatorError):
    """An accounting-API error: one entry of ``response.errors``."""

    errno = ERRNO_INVALID_VALUE

    def __init__(self, message: str, *, field: str, obj: str, value: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.obj = obj
        self.value = value


class NotFound(AccountingError):
    status = 404
    errno = ERRNO_NOT_FOUND


class InvalidSearch(AccountingError):
    """A search or paging parameter with a value of the wrong type (e.g. a non-date date filter)."""

    status = 400
    errno = ERRNO_INVALID_VALUE


# --- events (webhook callbacks) ------------------------------------------------------------------------------


class EventsError(EmulatorError):
    """An events-API error: ``{"errno", "message", "details"}``."""

    def __init__(self, message: str, *, status: int, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or []


# --- emulator-side (Python and control API) ------------------------------------------------------------------


class FieldError(EmulatorError, ValueError):
    """Bad input to the emulator's own API (Python methods or ``/_emulator/``): names the field."""

    def __init__(self, field: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


class RecordNotFound(FieldError, LookupError):
    """``update``/``delete`` of a record id that does not exist."""

    def __init__(self, kind: str, record_id: int) -> None:
        super().__init__("id", f"no {kind} with id {record_id}", status=404)
        self.kind = kind
        self.record_id = record_id
