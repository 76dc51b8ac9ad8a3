"""OAuth 2.1 flow of the sandbox: consent, PKCE, code and refresh-token rules, client auth."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sync.models import DiscoveryDocument, TokenResponse
from sync.sandbox import SandboxServer
from tests.conftest import store
from tests.sync.sandbox.conftest import bearer

CLIENT = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
REDIRECT_URI = "http://127.0.0.1:53682/callback"


def pkce_pair() -> tuple[str, str]:
    """Return a fresh (verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(challenge: str, **overrides: str) -> dict[str, str]:
    """Return the query of an authorization request."""
    params = {
        "response_type": "code",
        "client_id": "sandbox-client",
        "redirect_uri": REDIRECT_URI,
        "scope": "frames:read inventory:write not:a-scope",
        "state": "state-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return {**params, **overrides}


def consent(http: httpx.Client, challenge: str, decision: str) -> dict[str, list[str]]:
    """Open the consent page, press a button and return the redirect's query."""
    page = http.get("/oauth/authorize", params=authorize_params(challenge))
    consent_id = re.search(r'name="consent_id" value="([^"]+)"', page.text)
    assert page.status_code == 200
    assert consent_id is not None

    response = http.post(
        "/oauth/authorize", data={"consent_id": consent_id.group(1), "decision": decision}
    )
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"http://{location.netloc}{location.path}" == REDIRECT_URI
    return parse_qs(location.query)


def exchange_code(http: httpx.Client, code: str, verifier: str) -> httpx.Response:
    """Post an authorization_code grant with client_secret_post."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        **CLIENT,
    }
    return http.post("/oauth/token", data=form)


def refresh(http: httpx.Client, refresh_token: str) -> httpx.Response:
    """Post a refresh_token grant with client_secret_basic."""
    return http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CLIENT["client_id"], CLIENT["client_secret"]),
    )


def test_discovery_document(sandbox: SandboxServer, http: httpx.Client) -> None:
    """Discovery names the sandbox's own endpoints, S256 and both client auth methods."""
    document = DiscoveryDocument.model_validate(
        http.get("/.well-known/openid-configuration").json()
    )

    assert document.issuer == sandbox.url
    assert document.token_endpoint == f"{sandbox.url}/oauth/token"
    assert document.authorization_endpoint == f"{sandbox.url}/oauth/authorize"
    assert document.code_challenge_methods_supported == ["S256"]
    assert set(document.token_endpoint_auth_methods_supported) == {
        "client_secret_post",
        "client_secret_basic",
    }
    assert "inventory:write" in document.scopes_supported


def test_authorization_code_flow(http: httpx.Client) -> None:
    """Approving consent yields a code that buys tokens with the supported requested scopes."""
    verifier, challenge = pkce_pair()
    query = consent(http, challenge, "approve")

    response = exchange_code(http, query["code"][0], verifier)

    tokens = TokenResponse.model_validate(response.json())
    assert query["state"] == ["state-123"]
    assert response.status_code == 200
    assert tokens.scope == "frames:read inventory:write"
    assert tokens.expires_in == 3600
    assert response.headers["Cache-Control"] == "no-store"
    frames = http.get("/api/v1/partner/frames", headers=bearer(tokens.access_token))
    assert frames.status_code == 200


def test_consent_denied(http: httpx.Client) -> None:
    """Denying consent redirects with error=access_denied and the state."""
    _, challenge = pkce_pair()

    query = consent(http, challenge, "deny")

    assert query["error"] == ["access_denied"]
    assert query["state"] == ["state-123"]
    assert "code" not in query


def test_pkce_verifier_mismatch_rejected(http: httpx.Client) -> None:
    """A code_verifier that does not hash to the challenge is a 400 invalid_grant."""
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    query = consent(http, challenge, "approve")

    response = exchange_code(http, query["code"][0], other_verifier)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "error_description" in response.json()


def test_code_single_use(http: httpx.Client) -> None:
    """A code works once; the second exchange is invalid_grant and revokes the first tokens."""
    verifier, challenge = pkce_pair()
    code = consent(http, challenge, "approve")["code"][0]
    first = exchange_code(http, code, verifier)

    second = exchange_code(http, code, verifier)

    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    revoked = http.get("/api/v1/partner/frames", headers=bearer(first.json()["access_token"]))
    assert revoked.status_code == 401


def test_refresh_token_rotation(http: httpx.Client) -> None:
    """Each refresh returns a new refresh token and the used one is rejected afterwards."""
    verifier, challenge = pkce_pair()
    code = consent(http, challenge, "approve")["code"][0]
    original = exchange_code(http, code, verifier).json()

    rotated = refresh(http, original["refresh_token"])
    replayed = refresh(http, original["refresh_token"])
    next_rotation = refresh(http, rotated.json()["refresh_token"])

    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != original["refresh_token"]
    assert rotated.json()["scope"] == original["scope"]
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_grant"
    assert next_rotation.status_code == 200


def test_client_secret_wrong(http: httpx.Client) -> None:
    """A wrong client secret is a 401 invalid_client."""
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": "sandbox-client",
            "client_secret": "wrong",
        },
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_grant_type_unsupported(http: httpx.Client) -> None:
    """A grant type other than authorization_code or refresh_token is unsupported_grant_type."""
    response = http.post("/oauth/token", data={"grant_type": "password", **CLIENT})

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:1/cb",
        "http://127.0.0.1:65000/other/path",
        "http://[::1]:8080/cb",
        "http://localhost:9999/cb",
    ],
    ids=["low-port", "high-port", "ipv6", "localhost"],
)
def test_authorize_loopback_any_port(http: httpx.Client, redirect_uri: str) -> None:
    """Loopback redirect URIs are accepted on any port."""
    _, challenge = pkce_pair()

    response = http.get(
        "/oauth/authorize", params=authorize_params(challenge, redirect_uri=redirect_uri)
    )

    assert response.status_code == 200
    assert "consent_id" in response.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"state": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "unknown:scope"}, "invalid_scope"),
    ],
    ids=["plain-pkce", "no-state", "implicit", "no-supported-scope"],
)
def test_authorize_invalid_request_redirects(
    http: httpx.Client, overrides: dict[str, str], error: str
) -> None:
    """A malformed authorization request redirects back with the RFC 6749 error."""
    _, challenge = pkce_pair()

    response = http.get("/oauth/authorize", params=authorize_params(challenge, **overrides))

    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["error"] == [error]


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": "http://192.168.1.5:8080/cb"},
        {"client_id": "someone-else"},
    ],
    ids=["remote-host", "lan-host", "unknown-client"],
)
def test_authorize_untrusted_target_not_redirected(
    http: httpx.Client, overrides: dict[str, str]
) -> None:
    """An unknown client or non-loopback redirect URI gets an error page, never a redirect."""
    _, challenge = pkce_pair()

    response = http.get("/oauth/authorize", params=authorize_params(challenge, **overrides))

    assert response.status_code == 400
    assert "location" not in response.headers


def test_auto_consent_redirects_at_once(sandbox: SandboxServer, http: httpx.Client) -> None:
    """With auto-consent on, the authorization request redirects with a code straight away."""
    store(sandbox).set_auto_consent(True)
    _, challenge = pkce_pair()

    response = http.get("/oauth/authorize", params=authorize_params(challenge))

    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert response.status_code == 302
    assert query["state"] == ["state-123"]
    assert len(query["code"][0]) > 20
