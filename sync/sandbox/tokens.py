"""Access tokens, refresh tokens and authorization codes of the sandbox's OAuth server.

Tokens are opaque random strings. The store keeps a SHA-256 digest of each, so
nothing in memory dumps or logs reveals a usable token.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from sync.models import API_SCOPES, IDENTITY_SCOPES

SUPPORTED_SCOPES = (*API_SCOPES, *IDENTITY_SCOPES)
DEFAULT_ACCESS_TOKEN_TTL = 3600
AUTHORIZATION_CODE_TTL = 60
REFRESH_TOKEN_TTL = 30 * 24 * 3600
VERIFIER_PATTERN = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
# A scope that also grants the key scope: orders:full includes reading orders.
IMPLIED_BY = {"orders:read": ("orders:full",)}


def digest(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def s256_challenge(verifier: str) -> str:
    """Return the PKCE S256 code challenge of verifier (RFC 7636 section 4.2)."""
    hashed = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(hashed).rstrip(b"=").decode("ascii")


def granted_scopes(requested: str | list[str]) -> list[str]:
    """Return the requested scopes that the sandbox supports, in the order requested."""
    names = requested.split() if isinstance(requested, str) else requested
    return [name for name in dict.fromkeys(names) if name in SUPPORTED_SCOPES]


@dataclass
class AccessToken:
    """A stored access token."""

    scopes: frozenset[str]
    expires_at: float
    revoked: bool = False

    def is_active(self) -> bool:
        """Tell whether the token is neither revoked nor expired."""
        return not self.revoked and time.time() < self.expires_at

    def allows(self, scope: str) -> bool:
        """Tell whether the token carries scope or a scope that implies it."""
        return scope in self.scopes or any(
            item in self.scopes for item in IMPLIED_BY.get(scope, ())
        )


@dataclass
class RefreshToken:
    """A stored refresh token; `used` turns true when it is exchanged."""

    client_id: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False


@dataclass
class AuthorizationCode:
    """A stored authorization code with what the token request must match."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False
    issued_tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GrantError:
    """A rejected grant, as the RFC 6749 section 5.2 `error` and `error_description`."""

    error: str
    description: str


@dataclass(frozen=True)
class IssuedTokens:
    """Tokens handed out by one grant."""

    access_token: str
    refresh_token: str | None
    expires_in: int
    scopes: tuple[str, ...]


class TokenStore:
    """Codes and tokens behind one lock.

    Args:
        access_token_ttl: lifetime of access tokens in seconds.
    """

    def __init__(self, access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL) -> None:
        self.access_token_ttl = access_token_ttl
        self._lock = threading.Lock()
        self._access: dict[str, AccessToken] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._codes: dict[str, AuthorizationCode] = {}

    def reset(self) -> None:
        """Forget every code and token."""
        with self._lock:
            self._access.clear()
            self._refresh.clear()
            self._codes.clear()

    # Access tokens

    def mint(self, scopes: list[str] | tuple[str, ...], ttl: float | None = None) -> str:
        """Create an access token with exactly these scopes, valid for ttl seconds."""
        token = "ekat_" + secrets.token_urlsafe(32)
        lifetime = self.access_token_ttl if ttl is None else ttl
        with self._lock:
            self._access[digest(token)] = AccessToken(frozenset(scopes), time.time() + lifetime)
        return token

    def lookup(self, token: str) -> AccessToken | None:
        """Return the active access token, or None when it is unknown, expired or revoked."""
        with self._lock:
            stored = self._access.get(digest(token))
        return stored if stored is not None and stored.is_active() else None

    def expire(self, token: str) -> bool:
        """Make a token expired now; return False when it is unknown."""
        with self._lock:
            stored = self._access.get(digest(token))
            if stored is None:
                return False
            stored.expires_at = time.time() - 1
            return True

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token; return False when it is unknown."""
        key = digest(token)
        with self._lock:
            if key in self._access:
                self._access[key].revoked = True
                return True
            if key in self._refresh:
                self._refresh[key].used = True
                return True
            return False

    # Authorization codes

    def create_code(
        self, client_id: str, redirect_uri: str, code_challenge: str, scopes: tuple[str, ...]
    ) -> str:
        """Create a single-use authorization code valid for `AUTHORIZATION_CODE_TTL` seconds."""
        code = secrets.token_urlsafe(32)
        record = AuthorizationCode(
            client_id, redirect_uri, code_challenge, scopes, time.time() + AUTHORIZATION_CODE_TTL
        )
        with self._lock:
            self._codes[digest(code)] = record
        return code

    def redeem_code(
        self, code: str, client_id: str, redirect_uri: str, verifier: str
    ) -> IssuedTokens | GrantError:
        """Exchange a code for tokens after checking client, redirect URI and PKCE verifier.

        A code presented a second time is rejected and the tokens it issued are
        revoked, as OAuth 2.1 section 4.1.3 advises.

        Returns:
            The issued tokens, or the error when the grant is invalid.
        """
        with self._lock:
            record = self._codes.get(digest(code))
            if record is None or record.client_id != client_id:
                return GrantError("invalid_grant", "authorization code is unknown")
            if record.used:
                for token in record.issued_tokens:
                    self._access.pop(token, None)
                    self._refresh.pop(token, None)
                return GrantError("invalid_grant", "authorization code was already used")
            record.used = True
            if time.time() > record.expires_at:
                return GrantError("invalid_grant", "authorization code has expired")
            if record.redirect_uri != redirect_uri:
                return GrantError(
                    "invalid_grant", "redirect_uri does not match the authorization request"
                )
            if not VERIFIER_PATTERN.match(verifier):
                return GrantError(
                    "invalid_grant", "code_verifier must be 43 to 128 unreserved characters"
                )
            if not secrets.compare_digest(s256_challenge(verifier), record.code_challenge):
                return GrantError(
                    "invalid_grant", "code_verifier does not match the code_challenge"
                )
            issued = self._issue(client_id, record.scopes)
            record.issued_tokens = [digest(issued.access_token), digest(issued.refresh_token or "")]
            return issued

    # Refresh tokens

    def refresh(self, token: str, client_id: str, scope: str | None) -> IssuedTokens | GrantError:
        """Exchange a refresh token for new tokens; the presented one is used up.

        Args:
            token: the refresh token.
            client_id: the authenticated client.
            scope: optional narrower scope request; None keeps the original scopes.

        Returns:
            The issued tokens, or the error when the grant is invalid.
        """
        with self._lock:
            record = self._refresh.get(digest(token))
            if record is None or record.client_id != client_id:
                return GrantError("invalid_grant", "refresh token is unknown")
            if record.used:
                return GrantError(
                    "invalid_grant",
                    "refresh token was already used; refresh tokens rotate on every use",
                )
            if time.time() > record.expires_at:
                return GrantError("invalid_grant", "refresh token has expired")
            scopes = record.scopes
            if scope is not None:
                requested_scopes = tuple(scope.split())
                if not set(requested_scopes) <= set(record.scopes):
                    return GrantError(
                        "invalid_scope", "scope exceeds the scopes of the original grant"
                    )
                scopes = requested_scopes
            record.used = True
            return self._issue(client_id, scopes)

    def _issue(self, client_id: str, scopes: tuple[str, ...]) -> IssuedTokens:
        # Called with the lock held.
        access = "ekat_" + secrets.token_urlsafe(32)
        refresh = "ekrt_" + secrets.token_urlsafe(32)
        now = time.time()
        self._access[digest(access)] = AccessToken(frozenset(scopes), now + self.access_token_ttl)
        self._refresh[digest(refresh)] = RefreshToken(client_id, scopes, now + REFRESH_TOKEN_TTL)
        return IssuedTokens(access, refresh, self.access_token_ttl, scopes)
