"""Unit tests of TokenStore, OAuthTokenAuth and the scope checks."""

# Fake tokens, secrets and token URLs below are test data, not credentials.

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from sync.client import PartnerClient
from sync.errors import (
    AuthError,
    MissingScopeError,
    NotLoggedInError,
    ServerError,
    TokenRefreshError,
    UnauthorizedError,
)
from sync.retry import RetryPolicy
from sync.tokens import (
    OAuthTokenAuth,
    StoredToken,
    TokenStore,
    granted_scopes,
    require_scopes,
)

TOKEN_URL = "http://auth.test/oauth/token"
API_URL = "http://partner.test"
NOW = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
CLIENT_SECRET = "cs_topsecret_91d2"


def stored(
    access: str = "at-1", refresh: str | None = "rt-1", expires_in: float = 3600
) -> StoredToken:
    return StoredToken(
        access_token=access,
        refresh_token=refresh,
        expires_at=NOW + timedelta(seconds=expires_in),
        scope="frames:read inventory:write",
        client_id="practice-42",
        token_endpoint=TOKEN_URL,
    )


class FakeTokenServer:
    """Token endpoint that rotates refresh tokens and rejects used ones."""

    def __init__(self, current_refresh: str = "rt-1") -> None:
        self.valid_refresh = current_refresh
        self.issued = 1
        self.forms: list[dict[str, list[str]]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        with self.lock:
            self.forms.append(form)
            if form.get("refresh_token") != [self.valid_refresh]:
                return httpx.Response(
                    400, json={"error": "invalid_grant", "error_description": "refresh token used"}
                )
            self.issued += 1
            self.valid_refresh = f"rt-{self.issued}"
            return httpx.Response(
                200,
                json={
                    "access_token": f"at-{self.issued}",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": self.valid_refresh,
                    "scope": "frames:read inventory:write",
                },
            )


class FakeApi:
    """API that accepts only the access tokens in `valid` and records what it saw."""

    def __init__(
        self, valid: set[str], *, hold_rejections: threading.Barrier | None = None
    ) -> None:
        self.valid = valid
        self.seen: list[str] = []
        self.lock = threading.Lock()
        # Rejections wait here until every party was rejected, so their refreshes overlap.
        self.hold_rejections = hold_rejections

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.seen.append(token)
        if token not in self.valid:
            if self.hold_rejections is not None:
                self.hold_rejections.wait()
            return httpx.Response(
                401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                json={"error": {"code": "invalid_token", "message": "expired"}},
            )
        order = {
            "id": "ord_1",
            "status": "pending",
            "created_at": "2026-12-04T19:57:07Z",
            "updated_at": "2026-12-04T19:57:07Z",
        }
        return httpx.Response(200, json=order)


def make_auth(
    store: TokenStore, server: Callable[[httpx.Request], httpx.Response], **options: object
) -> OAuthTokenAuth:
    return OAuthTokenAuth(
        store,
        client_secret=CLIENT_SECRET,
        transport=httpx.MockTransport(server),
        now=lambda: NOW,
        **options,  # type: ignore[arg-type]
    )


def api_client(auth: OAuthTokenAuth, api: FakeApi) -> PartnerClient:
    return PartnerClient(
        API_URL, auth=auth, transport=httpx.MockTransport(api), retry=RetryPolicy.disabled()
    )


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "state" / "tokens.json")


# TokenStore


def test_token_store_round_trip(store: TokenStore) -> None:
    """A saved token loads back equal."""
    token = stored()

    store.save(token)

    assert store.load() == token


def test_token_store_file_mode_0600(store: TokenStore) -> None:
    """The token file is mode 0600 and its new directory 0700."""
    store.save(stored())

    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_token_store_leaves_no_temp_files(store: TokenStore) -> None:
    """After two saves only the token file is in the directory."""
    store.save(stored())
    store.save(stored(access="at-2"))

    assert [path.name for path in store.path.parent.iterdir()] == ["tokens.json"]
    assert store.load() == stored(access="at-2")


def test_token_store_missing_file_loads_none(store: TokenStore) -> None:
    """No file means no token."""
    assert store.load() is None


def test_token_store_invalid_json_hides_content(store: TokenStore) -> None:
    """A corrupt file raises AuthError that names the file but quotes none of its content."""
    store.path.parent.mkdir(parents=True)
    store.path.write_text('{"access_token": "at-leaky', encoding="utf-8")

    with pytest.raises(AuthError) as caught:
        store.load()

    assert str(store.path) in str(caught.value)
    assert "at-leaky" not in str(caught.value)
    assert "auth login" in str(caught.value)


def test_token_store_missing_field(store: TokenStore) -> None:
    """A file without client_id raises AuthError naming the field."""
    data = stored().to_json()
    del data["client_id"]
    store.path.parent.mkdir(parents=True)
    store.path.write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(AuthError, match="client_id"):
        store.load()


def test_stored_token_repr_hides_tokens() -> None:
    """repr() of a token shows no access or refresh token."""
    text = repr(stored(access="at-secret-123", refresh="rt-secret-456"))

    assert "at-secret-123" not in text
    assert "rt-secret-456" not in text


# OAuthTokenAuth


def test_auth_adds_bearer_header(store: TokenStore) -> None:
    """A valid stored token goes out as the bearer token, with no refresh."""
    store.save(stored())
    server = FakeTokenServer()
    api = FakeApi({"at-1"})

    api_client(make_auth(store, server), api).get_order("ord_1")

    assert api.seen == ["at-1"]
    assert server.forms == []


def test_auth_refreshes_before_expiry(store: TokenStore) -> None:
    """A token expiring within the skew is refreshed before the request is sent."""
    store.save(stored(expires_in=30))
    server = FakeTokenServer()
    api = FakeApi({"at-2"})

    api_client(make_auth(store, server, skew=60.0), api).get_order("ord_1")

    assert api.seen == ["at-2"]
    assert len(server.forms) == 1


def test_auth_refresh_uses_client_secret_post(store: TokenStore) -> None:
    """The refresh grant sends refresh_token, client_id and client_secret in the form."""
    store.save(stored(expires_in=0))
    server = FakeTokenServer()

    api_client(make_auth(store, server), FakeApi({"at-2"})).get_order("ord_1")

    assert server.forms[0]["grant_type"] == ["refresh_token"]
    assert server.forms[0]["refresh_token"] == ["rt-1"]
    assert server.forms[0]["client_id"] == ["practice-42"]
    assert server.forms[0]["client_secret"] == [CLIENT_SECRET]


def test_auth_401_refreshes_once_and_retries(store: TokenStore) -> None:
    """A 401 leads to exactly one refresh and one resend, which succeeds."""
    store.save(stored())
    server = FakeTokenServer()
    api = FakeApi({"at-2"})
    client = api_client(make_auth(store, server), api)

    order = client.get_order("ord_1")

    assert order.id == "ord_1"
    assert api.seen == ["at-1", "at-2"]
    assert len(server.forms) == 1
    assert client.request_counts["GET /api/v1/partner/orders/{orderId}"] == 2


def test_auth_second_401_is_raised(store: TokenStore) -> None:
    """When the refreshed token is rejected too, UnauthorizedError is raised after one refresh."""
    store.save(stored())
    server = FakeTokenServer()
    api = FakeApi(set())

    with pytest.raises(UnauthorizedError):
        api_client(make_auth(store, server), api).get_order("ord_1")

    assert api.seen == ["at-1", "at-2"]
    assert len(server.forms) == 1


def test_auth_stores_rotated_refresh_token(store: TokenStore) -> None:
    """The rotated refresh token replaces the old one in the store."""
    store.save(stored(expires_in=0))
    server = FakeTokenServer()

    api_client(make_auth(store, server), FakeApi({"at-2"})).get_order("ord_1")

    saved = store.load()
    assert saved is not None
    assert saved.refresh_token == "rt-2"
    assert saved.access_token == "at-2"
    assert saved.expires_at == NOW + timedelta(seconds=3600)


def test_auth_rejected_refresh_raises_token_refresh_error(store: TokenStore) -> None:
    """A refresh token that the server rejects raises TokenRefreshError asking for a login."""
    store.save(stored(expires_in=0, refresh="rt-stale"))
    server = FakeTokenServer(current_refresh="rt-other")

    with pytest.raises(TokenRefreshError) as caught:
        api_client(make_auth(store, server), FakeApi(set())).get_order("ord_1")

    assert "eyekiosk-sync auth login" in str(caught.value)
    assert "invalid_grant" in str(caught.value)
    assert "rt-stale" not in str(caught.value)


def test_auth_refresh_server_error_is_transient(store: TokenStore) -> None:
    """A 503 from the token endpoint raises ServerError, which the client may retry."""
    store.save(stored(expires_in=0))

    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "temporarily_unavailable"})

    with pytest.raises(ServerError):
        api_client(make_auth(store, failing), FakeApi(set())).get_order("ord_1")


def test_auth_without_refresh_token_asks_for_login(store: TokenStore) -> None:
    """An expired token without a refresh token raises TokenRefreshError."""
    store.save(stored(expires_in=0, refresh=None))

    with pytest.raises(TokenRefreshError, match="auth login"):
        api_client(make_auth(store, FakeTokenServer()), FakeApi(set())).get_order("ord_1")


def test_auth_without_token_raises_not_logged_in(store: TokenStore) -> None:
    """No stored token raises NotLoggedInError before any request."""
    api = FakeApi(set())

    with pytest.raises(NotLoggedInError, match="auth login"):
        api_client(make_auth(store, FakeTokenServer()), api).get_order("ord_1")

    assert api.seen == []


def test_auth_concurrent_401s_refresh_once(store: TokenStore) -> None:
    """Eight threads rejected together share one refresh."""
    store.save(stored())
    server = FakeTokenServer()
    api = FakeApi({"at-2"}, hold_rejections=threading.Barrier(8, timeout=10))
    client = api_client(make_auth(store, server), api)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        start.wait()
        try:
            client.get_order("ord_1")
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert api.seen.count("at-1") == 8
    assert len(server.forms) == 1


def test_auth_picks_up_token_from_new_login(store: TokenStore) -> None:
    """After a 401, a newer token written by another process is used without a refresh."""
    store.save(stored())
    server = FakeTokenServer()
    api = FakeApi({"at-1"})
    client = api_client(make_auth(store, server), api)
    client.get_order("ord_1")

    # `auth login` in another process replaces the grant, and the old token stops working.
    store.save(stored(access="at-fresh", refresh="rt-fresh"))
    api.valid = {"at-fresh"}

    client.get_order("ord_1")

    assert api.seen == ["at-1", "at-1", "at-fresh"]
    assert server.forms == []


def test_auth_granted_scopes(store: TokenStore) -> None:
    """granted_scopes() returns the stored scopes as a set."""
    store.save(stored())

    assert make_auth(store, FakeTokenServer()).granted_scopes() == {
        "frames:read",
        "inventory:write",
    }


# Scopes


def test_granted_scopes_of_no_token() -> None:
    """No token grants no scope."""
    assert granted_scopes(None) == set()


def test_require_scopes_names_missing_scope() -> None:
    """A missing scope raises MissingScopeError naming the scope and the feature."""
    needed = {"frames:read": "the frame mirror", "orders:read": "order import"}

    with pytest.raises(MissingScopeError) as caught:
        require_scopes({"frames:read"}, needed)

    assert caught.value.scope == "orders:read"
    assert caught.value.feature == "order import"
    assert "orders:read" in str(caught.value)


def test_require_scopes_accepts_granted() -> None:
    """All needed scopes granted raises nothing."""
    require_scopes({"frames:read", "inventory:write"}, {"frames:read": "the frame mirror"})
