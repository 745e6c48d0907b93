"""The provider's exception hierarchy.

Every error a user can meet names what went wrong and what to do about it, and never carries a secret.
"""

from __future__ import annotations


class FbmktoError(Exception):
    """Base class of every error raised by this provider."""


class ConfigError(FbmktoError):
    """A configuration problem the user must fix (account config, connection, missing key)."""


class ApiError(FbmktoError):
    """An error answered by a remote API (FreshBooks or Marketo).

    :param message: human-readable text, already free of secrets.
    :param status: HTTP status, when there was one.
    :param code: the API's own error code (Marketo ``"606"``, FreshBooks ``errno``, OAuth ``error``).
    :param retryable: whether sending the same request again may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable


class TransportError(ApiError):
    """The request did not complete: connection refused, timeout, broken stream.

    ``sent`` tells whether the server may have received (and acted on) the request.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message, retryable=True)
        self.sent = sent


class RateLimited(ApiError):
    """The API refused the call for a rate or concurrency limit; back off and retry."""


class QuotaExhausted(ApiError):
    """A daily quota is spent (Marketo 607, or our own daily budget); nothing is retried until it resets."""


class AuthError(ApiError):
    """Credentials are wrong, revoked or lack a scope; retrying will not help until the user acts."""


class ReauthorizationRequired(AuthError):
    """The stored FreshBooks refresh token is spent or revoked: the user must run ``fbmkto authorize``."""
