"""Unit tests of the login flow: PKCE, redirect checks, discovery, listener and paste modes."""

# Fake tokens, secrets and token URLs below are test data, not credentials.

from __future__ import annotations

import base64
import hashlib
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from sync.auth import (
    LoginError,
    OAuthClientConfig,
    OAuthEndpoints,
    build_authorization_request,
    code_challenge,
    discover_endpoints,
    login,
    parse_redirect,
    status,
)
from sync.tokens import StoredToken, TokenStore

ISSUER = "http://auth.test"
CLIENT_SECRET = "cs_login_secret_77"


def config(**changes: Any) -> OAuthClientConfig:
    values: dict[str, Any] = {
        "base_url": ISSUER,
        "client_id": "practice-42",
        "client_secret": CLIENT_SECRET,
        "scopes": ["frames:read", "inventory:write"],
    }
    values.update(changes)
    return OAuthClientConfig(**values)


class FakeAuthorizationServer:
    """Discovery, auto-consenting authorize endpoint and token endpoint, checking PKCE."""

    def __init__(self, *, issuer: str = ISSUER, deny: bool = False) -> None:
        self.issuer = issuer
        self.deny = deny
        self.challenges: dict[str, str] = {}
        self.authorize_queries: list[dict[str, list[str]]] = []
        self.token_forms: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{ISSUER}/oauth/authorize",
                    "token_endpoint": f"{ISSUER}/oauth/token",
                    "code_challenge_methods_supported": ["S256"],
                },
            )
        if path == "/oauth/authorize":
            return self.authorize(request)
        if path == "/oauth/token":
            return self.token(request)
        return httpx.Response(404)

    def authorize(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        self.authorize_queries.append(query)
        redirect_uri = query["redirect_uri"][0]
        state = query["state"][0]
        if self.deny:
            target = f"{redirect_uri}?{urlencode({'error': 'access_denied', 'state': state})}"
        else:
            code = f"code-{len(self.authorize_queries)}"
            self.challenges[code] = query["code_challenge"][0]
            target = f"{redirect_uri}?{urlencode({'code': code, 'state': state})}"
        return httpx.Response(302, headers={"Location": target})

    def token(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        self.token_forms.append(form)
        verifier = form["code_verifier"][0]
        digest = hashlib.sha256(verifier.encode()).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if self.challenges.get(form["code"][0]) != expected:
            return httpx.Response(
                400, json={"error": "invalid_grant", "error_description": "PKCE mismatch"}
            )
        return httpx.Response(
            200,
            json={
                "access_token": "at-login",
                "expires_in": 3600,
                "refresh_token": "rt-login",
                "scope": "frames:read inventory:write",
            },
        )


class LoopbackRouter(httpx.BaseTransport):
    """Send requests for the fake issuer to the mock, and loopback ones over real HTTP."""

    def __init__(self, mock: Callable[[httpx.Request], httpx.Response]) -> None:
        self.mock = httpx.MockTransport(mock)
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return self.mock.handle_request(request)
        assert request.url.host == "127.0.0.1", "tests send traffic to loopback only"
        return self.real.handle_request(request)

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "state" / "tokens.json")


# PKCE and the authorization request


def test_code_challenge_rfc7636_vector() -> None:
    """The S256 challenge matches the example of RFC 7636 appendix B."""
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_build_authorization_request_params() -> None:
    """The URL carries code flow, client, redirect, scopes, state and an S256 challenge."""
    request = build_authorization_request(
        config(), f"{ISSUER}/oauth/authorize", "http://127.0.0.1:5000/callback"
    )
    query = parse_qs(urlsplit(request.url).query)

    assert 43 <= len(request.code_verifier) <= 128
    assert query["response_type"] == ["code"]
    assert query["client_id"] == ["practice-42"]
    assert query["redirect_uri"] == ["http://127.0.0.1:5000/callback"]
    assert query["scope"] == ["frames:read inventory:write"]
    assert query["state"] == [request.state]
    assert query["code_challenge"] == [code_challenge(request.code_verifier)]
    assert query["code_challenge_method"] == ["S256"]
    assert CLIENT_SECRET not in request.url


def test_build_authorization_request_fresh_secrets() -> None:
    """Two requests never share a state or a verifier."""
    first = build_authorization_request(config(), f"{ISSUER}/a", "http://127.0.0.1:1/callback")
    second = build_authorization_request(config(), f"{ISSUER}/a", "http://127.0.0.1:1/callback")

    assert first.state != second.state
    assert first.code_verifier != second.code_verifier


REDIRECT_CASES = [
    pytest.param("code=abc&state=good", "abc", id="ok"),
    pytest.param("error=access_denied&state=good", "denied", id="access-denied"),
    pytest.param(
        "error=server_error&error_description=boom&state=good", "server_error", id="error"
    ),
    pytest.param("code=abc&state=evil", "does not match", id="state-mismatch"),
    pytest.param("code=abc", "does not match", id="state-missing"),
    pytest.param("state=good", "no authorization code", id="code-missing"),
    pytest.param("error=access_denied&state=evil", "does not match", id="denied-foreign-state"),
]


@pytest.mark.parametrize(("query", "outcome"), REDIRECT_CASES)
def test_parse_redirect_cases(query: str, outcome: str) -> None:
    """The redirect yields the code only with the right state and no error."""
    if outcome == "abc":
        assert parse_redirect(query, expected_state="good") == "abc"
        return

    with pytest.raises(LoginError, match=outcome):
        parse_redirect(query, expected_state="good")


def test_config_rejects_non_loopback_redirect_host() -> None:
    """A redirect host that is not a loopback address raises ValueError."""
    with pytest.raises(ValueError, match="loopback"):
        config(redirect_host="192.168.1.10")


# Discovery


def test_discover_endpoints_from_document() -> None:
    """Without explicit endpoints, discovery supplies them."""
    with httpx.Client(transport=httpx.MockTransport(FakeAuthorizationServer())) as http:
        endpoints = discover_endpoints(config(), http)

    assert endpoints == OAuthEndpoints(f"{ISSUER}/oauth/authorize", f"{ISSUER}/oauth/token")


def test_discover_endpoints_explicit_skips_discovery() -> None:
    """Explicit endpoints are used without any request."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    explicit = config(
        authorization_endpoint="http://a.test/auth", token_endpoint="http://a.test/tok"
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        endpoints = discover_endpoints(explicit, http)

    assert endpoints == OAuthEndpoints("http://a.test/auth", "http://a.test/tok")
    assert requests == []


def test_discover_endpoints_issuer_mismatch() -> None:
    """A discovery document naming another issuer raises LoginError."""
    server = FakeAuthorizationServer(issuer="http://elsewhere.test")

    with httpx.Client(transport=httpx.MockTransport(server)) as http:
        with pytest.raises(LoginError, match="elsewhere"):
            discover_endpoints(config(), http)


def test_discover_endpoints_http_error() -> None:
    """A failing discovery request raises LoginError with the status."""
    with httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(503))) as http:
        with pytest.raises(LoginError, match="503"):
            discover_endpoints(config(), http)


# Login through the loopback listener


def run_listener_login(
    server: FakeAuthorizationServer, store: TokenStore, **options: Any
) -> tuple[StoredToken, list[str]]:
    printed: list[str] = []
    router = LoopbackRouter(server)
    with (
        httpx.Client(transport=router) as follower,
        httpx.Client(transport=httpx.MockTransport(server)) as http,
    ):
        token = login(
            config(),
            store,
            open_browser=False,
            print_fn=printed.append,
            timeout=10,
            follow_redirects_with=follower,
            http=http,
            **options,
        )
    return token, printed


def test_login_listener_stores_token(store: TokenStore) -> None:
    """The redirect lands on the loopback listener and the exchanged tokens are stored."""
    server = FakeAuthorizationServer()

    token, printed = run_listener_login(server, store)

    assert token.access_token == "at-login"
    assert store.load() == token
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    redirect_uri = server.authorize_queries[0]["redirect_uri"][0]
    assert redirect_uri.startswith("http://127.0.0.1:")
    assert redirect_uri.endswith("/callback")
    assert server.token_forms[0]["client_secret"] == [CLIENT_SECRET]
    assert server.token_forms[0]["redirect_uri"] == [redirect_uri]
    assert any("/oauth/authorize?" in line for line in printed)
    assert not any("at-login" in line or CLIENT_SECRET in line for line in printed)


def test_login_listener_access_denied(store: TokenStore) -> None:
    """A denied consent raises LoginError and stores nothing."""
    with pytest.raises(LoginError, match="denied"):
        run_listener_login(FakeAuthorizationServer(deny=True), store)

    assert store.load() is None


def test_login_listener_times_out(store: TokenStore) -> None:
    """Without a redirect the listener gives up after the timeout."""
    with httpx.Client(transport=httpx.MockTransport(FakeAuthorizationServer())) as http:
        with pytest.raises(LoginError, match="no redirect arrived"):
            login(
                config(),
                store,
                open_browser=False,
                print_fn=lambda text: None,
                timeout=0.2,
                http=http,
            )


def test_login_follow_without_redirect_explains(store: TokenStore) -> None:
    """An authorize endpoint that shows a page instead of redirecting raises LoginError."""

    def consent_page(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/authorize":
            return httpx.Response(200, text="<form>Approve?</form>")
        return FakeAuthorizationServer()(request)

    with httpx.Client(transport=httpx.MockTransport(consent_page)) as client:
        with pytest.raises(LoginError, match="instead of a redirect"):
            login(
                config(),
                store,
                open_browser=False,
                print_fn=lambda text: None,
                follow_redirects_with=client,
                http=client,
            )


# Login with a pasted redirect URL


def paste_login(
    server: FakeAuthorizationServer,
    store: TokenStore,
    make_answer: Callable[[dict[str, list[str]]], str],
) -> StoredToken:
    """Run a --no-browser login; make_answer builds the pasted text from the authorize query."""
    printed: list[str] = []

    def answer(prompt: str) -> str:
        url = next(word for line in printed for word in line.split() if "/oauth/authorize?" in word)
        return make_answer(parse_qs(urlsplit(url).query))

    with httpx.Client(transport=httpx.MockTransport(server)) as http:
        return login(
            config(), store, no_browser=True, print_fn=printed.append, input_fn=answer, http=http
        )


def approve(server: FakeAuthorizationServer) -> Callable[[dict[str, list[str]]], str]:
    """Build a paste function returning the redirect URL of the fake server's consent."""

    def make_answer(query: dict[str, list[str]]) -> str:
        authorize = httpx.Request("GET", f"{ISSUER}/oauth/authorize", params=query)
        return server.authorize(authorize).headers["Location"]

    return make_answer


def test_login_paste_closed_stdin(store: TokenStore) -> None:
    """A closed standard input at the paste prompt is a LoginError, not a traceback."""
    server = FakeAuthorizationServer()

    def closed(_query: dict[str, list[str]]) -> str:
        raise EOFError

    with pytest.raises(LoginError, match="standard input is closed"):
        paste_login(server, store, closed)


def test_login_paste_stores_token(store: TokenStore) -> None:
    """A pasted redirect URL completes the login without a listener."""
    server = FakeAuthorizationServer()

    token = paste_login(server, store, approve(server))

    assert token.refresh_token == "rt-login"
    assert store.load() == token
    redirect_uri = server.authorize_queries[0]["redirect_uri"][0]
    assert urlsplit(redirect_uri).hostname == "127.0.0.1"
    assert urlsplit(redirect_uri).path == "/callback"


def test_login_paste_state_mismatch(store: TokenStore) -> None:
    """A pasted URL with another state raises LoginError before any token request."""
    server = FakeAuthorizationServer()

    def forged(query: dict[str, list[str]]) -> str:
        redirect_uri = query["redirect_uri"][0]
        return f"{redirect_uri}?code=code-x&state=forged"

    with pytest.raises(LoginError, match="state"):
        paste_login(server, store, forged)

    assert server.token_forms == []
    assert store.load() is None


def test_login_paste_not_a_redirect(store: TokenStore) -> None:
    """Pasting something other than the redirect URL raises LoginError."""
    with pytest.raises(LoginError, match="not the redirect URL"):
        paste_login(FakeAuthorizationServer(), store, lambda query: "hello")


def test_login_paste_empty(store: TokenStore) -> None:
    """An empty paste raises LoginError."""
    with pytest.raises(LoginError, match="no redirect URL"):
        paste_login(FakeAuthorizationServer(), store, lambda query: "  ")


def test_login_rejected_code_reports_oauth_error(store: TokenStore) -> None:
    """A token endpoint that rejects the code raises LoginError with the OAuth error code."""
    server = FakeAuthorizationServer()

    def wrong_code(query: dict[str, list[str]]) -> str:
        return f"{query['redirect_uri'][0]}?code=unknown&state={query['state'][0]}"

    with pytest.raises(LoginError, match="invalid_grant"):
        paste_login(server, store, wrong_code)

    assert store.load() is None


def test_login_paste_and_follow_exclusive(store: TokenStore) -> None:
    """no_browser with follow_redirects_with raises ValueError."""
    with httpx.Client() as client:
        with pytest.raises(ValueError, match="exclude"):
            login(config(), store, no_browser=True, follow_redirects_with=client)


# auth status


def test_status_without_token(store: TokenStore) -> None:
    """Without a token, status reports logged_in as False."""
    assert status(store)["logged_in"] is False


def test_status_reports_grant_without_tokens(store: TokenStore) -> None:
    """status shows client, scopes, expiry and token endpoint, and never a token."""
    now = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    store.save(
        StoredToken(
            access_token="at-hidden",
            refresh_token="rt-hidden",
            expires_at=now - timedelta(minutes=1),
            scope="inventory:write frames:read",
            client_id="practice-42",
            token_endpoint=f"{ISSUER}/oauth/token",
        )
    )

    info = status(store, now=now)

    assert info["client_id"] == "practice-42"
    assert info["scopes"] == ["frames:read", "inventory:write"]
    assert info["expires_at"] == "2026-12-04T19:59:00Z"
    assert info["expired"] is True
    assert info["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert "at-hidden" not in repr(info)
    assert "rt-hidden" not in repr(info)
