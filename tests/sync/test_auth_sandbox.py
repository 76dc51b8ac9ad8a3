"""Login, token refresh and rotation over real HTTP against the sandbox's OAuth server."""

# Fake tokens, secrets and token URLs below are test data, not credentials.

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import sync.retry
from sync.auth import (
    LoginError,
    OAuthClientConfig,
    build_authorization_request,
    discover_endpoints,
    exchange_code,
    login,
    parse_redirect,
)
from sync.client import PartnerClient
from sync.errors import TokenRefreshError
from sync.retry import RetryPolicy
from sync.sandbox.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from sync.sandbox.server import SandboxServer
from sync.sandbox.store import SandboxStore
from sync.tokens import OAuthTokenAuth, StoredToken, TokenStore

SCOPES = ["frames:read", "inventory:write"]
FRAMES = "GET /api/v1/partner/frames"


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the default retry sleep, so no test waits for real."""
    monkeypatch.setattr(sync.retry, "sleep", lambda seconds: None)


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A fresh sandbox whose authorization endpoint consents at once, as in the demo mode."""
    return make_sandbox(frames=30, auto_consent=True)


@pytest.fixture
def sandbox_store(sandbox: SandboxServer) -> SandboxStore:
    """The state of the sandbox: tokens, OAuth request counts and auto-consent."""
    assert sandbox.store is not None
    return sandbox.store


@pytest.fixture
def token_store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "state" / "tokens.json")


def oauth_config(sandbox: SandboxServer) -> OAuthClientConfig:
    return OAuthClientConfig(
        base_url=sandbox.url,
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        scopes=SCOPES,
        timeout=10.0,
    )


def login_with_listener(sandbox: SandboxServer, token_store: TokenStore) -> StoredToken:
    """Log in through the loopback listener while the sandbox consents at once."""
    with httpx.Client() as follower:
        return login(
            oauth_config(sandbox),
            token_store,
            open_browser=False,
            print_fn=lambda text: None,
            timeout=10,
            follow_redirects_with=follower,
        )


def consent_redirect(authorization_url: str) -> str:
    """GET the authorization URL without following and return where it redirects to."""
    response = httpx.get(authorization_url, follow_redirects=False)
    assert response.status_code == 302, response.text[:200]
    return response.headers["Location"]


def authorization_url_in(printed: list[str]) -> str:
    return next(word for line in printed for word in line.split() if "/oauth/authorize?" in word)


def api_client(sandbox: SandboxServer, auth: OAuthTokenAuth) -> PartnerClient:
    return PartnerClient(sandbox.url, auth=auth, retry=RetryPolicy.disabled())


# Login


def test_login_sandbox_loopback_listener(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """Auto-consent redirects onto the listener, and the stored token works for API calls."""
    token = login_with_listener(sandbox, token_store)

    assert token.scopes == set(SCOPES)
    assert token.token_endpoint == f"{sandbox.url}/oauth/token"
    assert token_store.load() == token
    with api_client(
        sandbox, OAuthTokenAuth(token_store, client_secret=DEFAULT_CLIENT_SECRET)
    ) as client:
        assert len(list(client.iter_frames())) == 30


def test_login_sandbox_token_file_mode(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """The token file written by a login is mode 0600."""
    login_with_listener(sandbox, token_store)

    assert stat.S_IMODE(token_store.path.stat().st_mode) == 0o600


def test_login_sandbox_no_browser_paste(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """In --no-browser mode the pasted redirect URL completes the login."""
    printed: list[str] = []

    def paste(prompt: str) -> str:
        return consent_redirect(authorization_url_in(printed))

    token = login(
        oauth_config(sandbox),
        token_store,
        no_browser=True,
        print_fn=printed.append,
        input_fn=paste,
    )

    assert token_store.load() == token
    assert sandbox_store.oauth.token_requests["authorization_code"] == 1


def test_login_sandbox_state_mismatch(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """A pasted redirect with another state is rejected before the code is redeemed."""
    printed: list[str] = []

    def paste_forged(prompt: str) -> str:
        redirect = consent_redirect(authorization_url_in(printed))
        code = parse_qs(urlsplit(redirect).query)["code"][0]
        return redirect.split("?")[0] + f"?code={code}&state=forged-state"

    with pytest.raises(LoginError, match="state"):
        login(
            oauth_config(sandbox),
            token_store,
            no_browser=True,
            print_fn=printed.append,
            input_fn=paste_forged,
        )

    assert sandbox_store.oauth.token_requests["authorization_code"] == 0
    assert token_store.load() is None


def test_login_sandbox_access_denied(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """Denying on the consent page ends the login with an access-denied error."""
    sandbox_store.set_auto_consent(False)
    printed: list[str] = []

    def deny(prompt: str) -> str:
        page = httpx.get(authorization_url_in(printed))
        consent_id = page.text.split('name="consent_id" value="')[1].split('"')[0]
        decision = httpx.post(
            f"{sandbox.url}/oauth/authorize",
            data={"consent_id": consent_id, "decision": "deny"},
        )
        return decision.headers["Location"]

    with pytest.raises(LoginError, match="denied"):
        login(
            oauth_config(sandbox),
            token_store,
            no_browser=True,
            print_fn=printed.append,
            input_fn=deny,
        )

    assert token_store.load() is None


def test_exchange_code_sandbox_rejects_wrong_verifier(
    sandbox: SandboxServer, sandbox_store: SandboxStore
) -> None:
    """A code redeemed with another PKCE verifier is rejected with invalid_grant."""
    config = oauth_config(sandbox)
    with httpx.Client() as http:
        endpoints = discover_endpoints(config, http)
        request = build_authorization_request(
            config, endpoints.authorization_endpoint, "http://127.0.0.1:9/callback"
        )
        code = parse_redirect(
            urlsplit(consent_redirect(request.url)).query, expected_state=request.state
        )
        wrong = replace(request, code_verifier=request.code_verifier[::-1])

        with pytest.raises(LoginError, match="invalid_grant"):
            exchange_code(config, endpoints, wrong, code, http)


# Refresh


def test_auth_sandbox_401_refreshes_once(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """An access token expired on the server gives one 401, one refresh and a successful retry."""
    token = login_with_listener(sandbox, token_store)
    assert sandbox_store.expire_token(token.access_token)
    auth = OAuthTokenAuth(token_store, client_secret=DEFAULT_CLIENT_SECRET)

    with api_client(sandbox, auth) as client:
        first_page = next(client.iter_frame_pages())

    assert len(first_page) == 30
    assert auth.refresh_count == 1
    assert sandbox_store.oauth.token_requests["refresh_token"] == 1
    assert client.request_counts[FRAMES] == 2
    assert sandbox_store.request_counts()[FRAMES] == 2


def test_auth_sandbox_refresh_rotates_token(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """After a refresh the store contains the new refresh token and the old one is rejected."""
    old = login_with_listener(sandbox, token_store)
    auth = OAuthTokenAuth(token_store, client_secret=DEFAULT_CLIENT_SECRET)

    new = auth.refresh()
    replay = httpx.post(
        old.token_endpoint,
        data={
            "grant_type": "refresh_token",
            "refresh_token": old.refresh_token or "",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
        },
    )

    assert new.refresh_token != old.refresh_token
    assert token_store.load() == new
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


def test_auth_sandbox_refreshes_before_expiry(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """A token that expires within the skew is refreshed before the call, so no 401 happens."""
    token = login_with_listener(sandbox, token_store)
    token_store.save(replace(token, expires_at=datetime.now(UTC) + timedelta(seconds=10)))
    auth = OAuthTokenAuth(token_store, client_secret=DEFAULT_CLIENT_SECRET, skew=60)

    with api_client(sandbox, auth) as client:
        next(client.iter_frame_pages())

    assert auth.refresh_count == 1
    assert sandbox_store.request_counts()[FRAMES] == 1


def test_auth_sandbox_revoked_refresh_token(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """A revoked refresh token raises TokenRefreshError telling the operator to log in."""
    token = login_with_listener(sandbox, token_store)
    assert sandbox_store.revoke_token(token.refresh_token or "")
    assert sandbox_store.expire_token(token.access_token)
    auth = OAuthTokenAuth(token_store, client_secret=DEFAULT_CLIENT_SECRET)

    with api_client(sandbox, auth) as client:
        with pytest.raises(TokenRefreshError) as caught:
            client.get_order("ord_00000001")

    assert "eyekiosk-sync auth login" in str(caught.value)
    assert token.refresh_token is not None
    assert token.refresh_token not in str(caught.value)


def test_auth_sandbox_wrong_client_secret(
    sandbox: SandboxServer, sandbox_store: SandboxStore, token_store: TokenStore
) -> None:
    """A refresh with the wrong client secret raises TokenRefreshError without the secret."""
    login_with_listener(sandbox, token_store)
    auth = OAuthTokenAuth(token_store, client_secret="wrong-secret-value")

    with pytest.raises(TokenRefreshError, match="invalid_client") as caught:
        auth.refresh()

    assert "wrong-secret-value" not in str(caught.value)


def test_auth_sandbox_second_holder_uses_rotated_token(
    sandbox: SandboxServer, token_store: TokenStore
) -> None:
    """Two holders of one grant refresh once: the second takes the token the first stored.

    Refresh tokens rotate, so a second refresh with the old refresh token
    would be rejected by the sandbox.
    """
    login_with_listener(sandbox, token_store)
    first = OAuthTokenAuth(token_store, client_secret=DEFAULT_CLIENT_SECRET)
    second = OAuthTokenAuth(token_store, client_secret=DEFAULT_CLIENT_SECRET)
    first.granted_scopes()
    second.granted_scopes()

    refreshed = first.refresh()
    taken = second.refresh()

    assert taken.access_token == refreshed.access_token
    assert first.refresh_count == 1
    assert second.refresh_count == 0
    first.close()
    second.close()
