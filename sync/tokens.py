"""Token storage and the httpx authentication that keeps the access token fresh.

The tokens live in their own JSON file with mode 0600, never in the TOML
configuration. ``OAuthTokenAuth`` adds the bearer token to every Partner API
request, refreshes it shortly before it expires, and after a 401 refreshes once
and retries the request once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pydantic

from sync.errors import (
    AuthError,
    MissingScopeError,
    NotLoggedInError,
    PartnerTransportError,
    RateLimitedError,
    ServerError,
    TokenRefreshError,
)
from sync.models import TokenResponse, format_timestamp
from sync.retry import parse_retry_after

logger = logging.getLogger("eyekiosk_sync.auth")

DEFAULT_REFRESH_SKEW = 60.0
DEFAULT_TOKEN_TIMEOUT = 30.0
TOKEN_FILE_MODE = 0o600
TOKEN_DIR_MODE = 0o700
LOGIN_HINT = "run `eyekiosk-sync auth login` to sign in again"


@dataclass(frozen=True)
class StoredToken:
    """An OAuth grant as stored on disk.

    Attributes:
        access_token: bearer token for API calls.
        refresh_token: token for the refresh_token grant, or None when none was issued.
        expires_at: when the access token expires, in UTC.
        scope: space-separated scopes that the server granted.
        client_id: OAuth client the grant belongs to.
        token_endpoint: URL that refreshes the grant.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scope: str
    client_id: str
    token_endpoint: str

    @property
    def scopes(self) -> frozenset[str]:
        """Granted scopes as a set."""
        return frozenset(self.scope.split())

    def expires_within(self, seconds: float, *, now: datetime | None = None) -> bool:
        """Tell whether the access token expires within ``seconds`` from ``now``."""
        current = now or datetime.now(UTC)
        return self.expires_at - timedelta(seconds=seconds) <= current

    @classmethod
    def from_response(
        cls,
        response: TokenResponse,
        *,
        client_id: str,
        token_endpoint: str,
        previous: StoredToken | None = None,
        requested_scope: str = "",
        now: datetime | None = None,
    ) -> StoredToken:
        """Build a stored token from a token endpoint response.

        A response without ``refresh_token`` keeps the previous one, and a
        response without ``scope`` keeps the previous or requested scope, as
        RFC 6749 sections 5.1 and 6 allow.
        """
        current = now or datetime.now(UTC)
        refresh_token = response.refresh_token or (previous.refresh_token if previous else None)
        scope = response.scope or (previous.scope if previous else requested_scope)
        return cls(
            access_token=response.access_token,
            refresh_token=refresh_token,
            expires_at=current + timedelta(seconds=response.expires_in),
            scope=scope,
            client_id=client_id,
            token_endpoint=token_endpoint,
        )

    def to_json(self) -> dict[str, Any]:
        """Serialise to the JSON object that TokenStore writes."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": format_timestamp(self.expires_at),
            "scope": self.scope,
            "client_id": self.client_id,
            "token_endpoint": self.token_endpoint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredToken:
        """Parse the JSON object that TokenStore writes.

        Raises:
            ValueError: a field is missing or has the wrong type.
        """
        try:
            expires_at = datetime.fromisoformat(str(data["expires_at"]))
            refresh_token = data.get("refresh_token")
            token = cls(
                access_token=str(data["access_token"]),
                refresh_token=None if refresh_token is None else str(refresh_token),
                expires_at=expires_at.astimezone(UTC) if expires_at.tzinfo else expires_at,
                scope=str(data.get("scope", "")),
                client_id=str(data["client_id"]),
                token_endpoint=str(data["token_endpoint"]),
            )
        except KeyError as error:
            raise ValueError(f"missing field {error.args[0]!r}") from None
        if token.expires_at.tzinfo is None:
            raise ValueError("expires_at has no UTC offset")
        return token


class TokenStore:
    """JSON file holding one StoredToken, written atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> StoredToken | None:
        """Read the stored token.

        Returns:
            The token, or None when the file does not exist.

        Raises:
            AuthError: the file exists but cannot be read or parsed.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise AuthError(
                f"cannot read the token file {self.path}: {error.strerror}; {LOGIN_HINT}"
            ) from error

        self._warn_if_readable_by_others()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            # NOTE: the decode error is left out because its message may quote a token.
            raise AuthError(f"the token file {self.path} is not valid JSON; {LOGIN_HINT}") from None
        try:
            return StoredToken.from_json(data)
        except (ValueError, TypeError, AttributeError) as error:
            raise AuthError(
                f"the token file {self.path} is invalid ({error}); {LOGIN_HINT}"
            ) from None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold an exclusive lock on the grant across processes, e.g. for a refresh."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=TOKEN_DIR_MODE)
        lock_path = self.path.with_name(self.path.name + ".lock")
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, TOKEN_FILE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def save(self, token: StoredToken) -> None:
        """Write ``token`` atomically: temporary file with mode 0600, fsync, rename.

        The directory is created with mode 0700 when missing.

        Raises:
            OSError: the file or directory cannot be written.
        """
        directory = self.path.parent
        directory.mkdir(mode=TOKEN_DIR_MODE, parents=True, exist_ok=True)
        payload = json.dumps(token.to_json(), indent=2) + "\n"

        # mkstemp creates the file with mode 0600, so the token is never readable by others.
        handle, temp_name = tempfile.mkstemp(
            dir=directory, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temp_name, TOKEN_FILE_MODE)
            os.replace(temp_name, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        _fsync_directory(directory)

    def _warn_if_readable_by_others(self) -> None:
        with contextlib.suppress(OSError):
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o077:
                logger.warning(
                    "token file %s has mode %o; run chmod 600 on it",
                    self.path,
                    mode,
                    extra={"event": "token_file_mode", "path": str(self.path)},
                )


def _fsync_directory(directory: Path) -> None:
    """Flush the rename to disk; not every platform can open a directory."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def granted_scopes(token: StoredToken | None) -> set[str]:
    """Return the scopes of ``token``, or an empty set when there is none."""
    return set(token.scopes) if token else set()


def require_scopes(granted: set[str] | frozenset[str], needed: Mapping[str, str]) -> None:
    """Check that every scope that a configured feature needs was granted.

    Args:
        granted: the scopes of the stored grant.
        needed: scope mapped to the name of the feature that needs it.

    Raises:
        MissingScopeError: for the first missing scope in alphabetical order.
    """
    for scope in sorted(needed):
        if scope not in granted:
            raise MissingScopeError(scope, feature=needed[scope])


class OAuthTokenAuth(httpx.Auth):
    """httpx authentication with a stored OAuth grant that refreshes itself.

    Adds ``Authorization: Bearer`` to each request. Before a request, a token
    that expires within ``skew`` seconds is refreshed through the token endpoint
    (refresh_token grant, client_secret_post). After a 401 the token is
    refreshed once and the request is sent once more; a second 401 is returned
    to the caller. A lock serialises refreshes, so threads that hit an expired
    token together refresh it once. Only synchronous clients are supported.
    """

    def __init__(
        self,
        store: TokenStore,
        *,
        client_secret: str | None = None,
        skew: float = DEFAULT_REFRESH_SKEW,
        timeout: float = DEFAULT_TOKEN_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """Create the authentication.

        Args:
            store: where the grant is read from and refreshed tokens are written to.
            client_secret: secret for client_secret_post, or None for a public client.
            skew: seconds before expiry at which the token is refreshed ahead of use.
            timeout: connect, read, write and pool timeout of token endpoint calls.
            transport: httpx transport for token endpoint calls, for tests.
            now: clock returning an aware UTC datetime, for tests.
        """
        self._store = store
        self._client_secret = client_secret
        self._skew = skew
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._token: StoredToken | None = None
        self._http = httpx.Client(timeout=httpx.Timeout(timeout), transport=transport)
        self.refresh_count = 0

    def close(self) -> None:
        """Close the HTTP client used for the token endpoint."""
        self._http.close()

    def __enter__(self) -> OAuthTokenAuth:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def granted_scopes(self) -> set[str]:
        """Return the scopes of the stored grant.

        Raises:
            NotLoggedInError: no token is stored.
        """
        with self._lock:
            return set(self._load_locked().scopes)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Send ``request`` with a fresh bearer token; refresh and resend once after a 401."""
        token = self._usable_token()
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request

        if response.status_code != httpx.codes.UNAUTHORIZED:
            return
        logger.info(
            "access token rejected with 401 on %s %s; refreshing once and retrying",
            request.method,
            request.url.path,
            extra={"event": "token_rejected", "method": request.method, "path": request.url.path},
        )
        token = self._refresh_after_rejection(token.access_token)
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Reject async clients: refreshing blocks on a lock and a sync HTTP call."""
        raise NotImplementedError("OAuthTokenAuth supports only synchronous httpx clients")
        yield request  # pragma: no cover  # makes this an async generator

    def refresh(self) -> StoredToken:
        """Refresh the grant now and store the result.

        Raises:
            NotLoggedInError: no token is stored.
            TokenRefreshError: the token endpoint rejected the refresh token.
        """
        with self._lock:
            current = self._load_locked()
            return self._refresh_locked(current)

    # Token state; every method ending in _locked runs with self._lock held.

    def _usable_token(self) -> StoredToken:
        with self._lock:
            token = self._load_locked()
            if not token.expires_within(self._skew, now=self._now()):
                return token

            # Another process, such as `auth login`, may have stored a newer grant.
            stored = self._store.load()
            if stored and not stored.expires_within(self._skew, now=self._now()):
                self._token = stored
                return stored
            return self._refresh_locked(token)

    def _refresh_after_rejection(self, rejected_access_token: str) -> StoredToken:
        with self._lock:
            token = self._load_locked()
            if token.access_token != rejected_access_token:
                # A concurrent request refreshed already.
                return token
            stored = self._store.load()
            if stored and stored.access_token != rejected_access_token:
                self._token = stored
                return stored
            return self._refresh_locked(token)

    def _load_locked(self) -> StoredToken:
        if self._token is None:
            self._token = self._store.load()
        if self._token is None:
            raise NotLoggedInError(
                f"no token is stored in {self._store.path}; run `eyekiosk-sync auth login`"
            )
        return self._token

    def _refresh_locked(self, token: StoredToken) -> StoredToken:
        # Refresh tokens rotate, so two processes (the daemon and a manual
        # `sync`) must not spend the same one: the second would be rejected.
        with self._store.exclusive():
            stored = self._store.load()
            if stored is not None and stored.refresh_token != token.refresh_token:
                # Another process rotated the grant: use its tokens, refreshing them if needed.
                self._token = stored
                if not stored.expires_within(self._skew, now=self._now()):
                    return stored
                return self._refresh_now(stored)
            return self._refresh_now(token)

    def _refresh_now(self, token: StoredToken) -> StoredToken:
        if not token.refresh_token:
            raise TokenRefreshError(
                f"the access token expired and no refresh token is stored; {LOGIN_HINT}"
            )

        form = {
            "grant_type": "refresh_token",
            "refresh_token": token.refresh_token,
            "client_id": token.client_id,
        }
        if self._client_secret:
            form["client_secret"] = self._client_secret
        response = self._post_token_endpoint(token.token_endpoint, form)

        try:
            body = TokenResponse.model_validate_json(response.content)
        except pydantic.ValidationError:
            raise TokenRefreshError(
                f"the token endpoint returned an invalid refresh response; {LOGIN_HINT}"
            ) from None
        fresh = StoredToken.from_response(
            body,
            client_id=token.client_id,
            token_endpoint=token.token_endpoint,
            previous=token,
            now=self._now(),
        )
        self._store.save(fresh)
        self._token = fresh
        self.refresh_count += 1
        logger.info(
            "access token refreshed; it expires at %s",
            format_timestamp(fresh.expires_at),
            extra={"event": "token_refreshed", "expires_at": format_timestamp(fresh.expires_at)},
        )
        return fresh

    def _post_token_endpoint(self, url: str, form: dict[str, str]) -> httpx.Response:
        """POST the refresh grant and map failures; a rejected grant is a TokenRefreshError."""
        path = httpx.URL(url).path
        try:
            response = self._http.post(url, data=form)
        except httpx.TransportError as error:
            raise PartnerTransportError(
                f"token endpoint unreachable ({type(error).__name__})",
                status=None,
                method="POST",
                endpoint=path,
            ) from error
        logger.debug(
            "POST %s %d",
            path,
            response.status_code,
            extra={
                "event": "token_call",
                "method": "POST",
                "path": path,
                "status": response.status_code,
            },
        )

        status = response.status_code
        if status == httpx.codes.OK:
            return response
        if status == httpx.codes.TOO_MANY_REQUESTS:
            raise RateLimitedError(
                "token endpoint rate limited",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                status=status,
                method="POST",
                endpoint=path,
            )
        if status >= 500:
            raise ServerError("token endpoint failed", status=status, method="POST", endpoint=path)

        code, _ = oauth_error(response)
        if code == "invalid_client":
            raise TokenRefreshError(
                f"the token endpoint rejected the client credentials (status {status}, error "
                f"{code}); check auth.client_id and the client secret "
                "(EYEKIOSK_SYNC_AUTH__CLIENT_SECRET or auth.client_secret_file)"
            )
        raise TokenRefreshError(
            f"the token endpoint rejected the refresh token (status {status}, error {code}); "
            f"{LOGIN_HINT}"
        )


def oauth_error(response: httpx.Response) -> tuple[str, str]:
    """Return the RFC 6749 section 5.2 ``error`` and ``error_description`` of a token response.

    Both are shortened and fall back to "unknown" and "" when the body has none.
    """
    try:
        body = response.json()
    except ValueError:
        return "unknown", ""
    if not isinstance(body, dict):
        return "unknown", ""
    code = body.get("error")
    description = body.get("error_description")
    code_text = code if isinstance(code, str) and code.isprintable() and len(code) <= 64 else None
    description_text = description[:200] if isinstance(description, str) else ""
    return code_text or "unknown", description_text
