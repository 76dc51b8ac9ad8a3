"""Exceptions of eyekiosk-sync. Each subclass sets the engine's next move.

    SyncError                       root; never raised itself
    ├── ConfigError                 stop: the operator fixes the TOML or environment
    ├── SourceError                 skip this cycle: a stock source could not be read
    │   └── SourceGuardError        skip this cycle: empty or truncated source (--force overrides)
    ├── SinkError                   keep the order checkpoint: an order sink is unreachable
    ├── AuthError                   stop: the operator runs `eyekiosk-sync auth login`
    │   ├── NotLoggedInError        no stored token
    │   ├── TokenRefreshError       the refresh token was rejected
    │   └── MissingScopeError       the grant lacks a scope a configured feature needs
    ├── PartnerAPIError             an Eyekiosk call failed (status, method, endpoint, excerpt)
    │   ├── TransientAPIError       retry with backoff
    │   │   ├── RateLimitedError    429, carries Retry-After
    │   │   ├── ServerError         5xx
    │   │   └── PartnerTransportError  connect, read or write failure, timeout
    │   └── PartnerRequestError     4xx: never retried, the request itself is wrong
    │       ├── UnauthorizedError   401: one token refresh, then one retry
    │       ├── InsufficientScopeError  403 naming the missing scope
    │       └── NotFoundError       404
    └── StateError                  the state database is unusable or inconsistent

No message carries an access token, refresh token, client secret or patient data.
"""

from __future__ import annotations

EXCERPT_CHARS = 200


class SyncError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(SyncError):
    """The configuration is invalid; the message names the key path and the fix."""


class SourceError(SyncError):
    """A stock source could not be read at all.

    Rows that fail on their own are rejections, not errors; this is for a missing
    file, an unreadable encoding, a database that refuses the connection.
    """

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


class SourceGuardError(SourceError):
    """The source looks empty or truncated, so the cycle posts nothing."""


class SinkError(SyncError):
    """An order sink could not take orders at all; the checkpoint stays where it is."""

    def __init__(self, message: str, *, sink: str) -> None:
        super().__init__(f"{sink}: {message}")
        self.sink = sink


class AuthError(SyncError):
    """The stored authorization cannot be used."""


class NotLoggedInError(AuthError):
    """No token is stored for this client."""


class TokenRefreshError(AuthError):
    """The token endpoint rejected the refresh token."""


class MissingScopeError(AuthError):
    """The granted scopes lack one that a configured feature needs."""

    def __init__(self, scope: str, *, feature: str) -> None:
        super().__init__(
            f"the authorization lacks the scope {scope!r}, which {feature} needs; "
            f"add it to [auth] scopes and run `eyekiosk-sync auth login` again"
        )
        self.scope = scope
        self.feature = feature


class PartnerAPIError(SyncError):
    """An Eyekiosk Partner API call failed.

    Attributes:
        status: HTTP status code, or None when no response arrived.
        method: HTTP method of the call.
        endpoint: path of the call, without query string.
        excerpt: the first characters of the response body, for diagnosis.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        method: str,
        endpoint: str,
        excerpt: str = "",
    ) -> None:
        where = f"{method} {endpoint}"
        head = f"{where} failed with status {status}" if status else f"{where} failed"
        super().__init__(f"{head}: {message}")
        self.status = status
        self.method = method
        self.endpoint = endpoint
        self.excerpt = excerpt[:EXCERPT_CHARS]


class TransientAPIError(PartnerAPIError):
    """A failure that may pass: retry with backoff."""


class RateLimitedError(TransientAPIError):
    """429 Too Many Requests; retry_after is the server's wait in seconds, if given."""

    def __init__(self, message: str, *, retry_after: float | None, **context: object) -> None:
        super().__init__(message, **context)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(TransientAPIError):
    """A 5xx response."""


class PartnerTransportError(TransientAPIError):
    """No response: connection refused or reset, or a timeout."""


class PartnerRequestError(PartnerAPIError):
    """A 4xx response other than 429: retrying the same request cannot help."""


class UnauthorizedError(PartnerRequestError):
    """401: the access token was rejected."""


class InsufficientScopeError(PartnerRequestError):
    """403: the token lacks required_scope."""

    def __init__(self, message: str, *, required_scope: str | None, **context: object) -> None:
        super().__init__(message, **context)  # type: ignore[arg-type]
        self.required_scope = required_scope


class NotFoundError(PartnerRequestError):
    """404: the frame, order or webhook does not exist."""


class StateError(SyncError):
    """The state database is unusable or contains inconsistent data."""


__all__ = [
    "AuthError",
    "ConfigError",
    "InsufficientScopeError",
    "MissingScopeError",
    "NotFoundError",
    "NotLoggedInError",
    "PartnerAPIError",
    "PartnerRequestError",
    "PartnerTransportError",
    "RateLimitedError",
    "ServerError",
    "SinkError",
    "SourceError",
    "SourceGuardError",
    "StateError",
    "SyncError",
    "TokenRefreshError",
    "TransientAPIError",
    "UnauthorizedError",
]
