"""Bearer token checks and scope enforcement on the Partner API."""

from __future__ import annotations

import httpx
import pytest

from sync.sandbox import SandboxServer
from tests.conftest import MintToken, store
from tests.sync.sandbox.conftest import bearer

API = "/api/v1/partner"


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/frames", "frames:read"),
        ("POST", "/inventory", "inventory:write"),
        ("GET", "/orders", "orders:read"),
        ("GET", "/orders/ord_00000001", "orders:read"),
        ("PATCH", "/orders/ord_00000001", "orders:full"),
        ("GET", "/prescriptions", "prescriptions:read"),
        ("GET", "/webhooks", "webhooks:read"),
        ("POST", "/webhooks", "webhooks:write"),
        ("PATCH", "/webhooks/wh_00000001", "webhooks:write"),
        ("DELETE", "/webhooks/wh_00000001", "webhooks:write"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_scope_missing_is_403(
    http: httpx.Client, mint_token: MintToken, method: str, path: str, scope: str
) -> None:
    """A token without the endpoint's scope gets 403 insufficient_scope naming that scope."""
    response = http.request(method, API + path, json={}, headers=bearer(mint_token("openid")))

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert response.json()["error"]["required_scope"] == scope


def test_orders_full_reads_orders(http: httpx.Client, mint_token: MintToken) -> None:
    """orders:full alone is enough to list orders."""
    response = http.get(f"{API}/orders", headers=bearer(mint_token("orders:full")))

    assert response.status_code == 200


def test_token_missing_is_401(http: httpx.Client) -> None:
    """A request without a token gets 401 invalid_token and a WWW-Authenticate header."""
    response = http.get(f"{API}/frames")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_token_unknown_is_401(http: httpx.Client) -> None:
    """A token the sandbox never issued gets 401 invalid_token."""
    response = http.get(f"{API}/frames", headers=bearer("ekat_made-up"))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_token_expired_is_401(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A token works until it is expired, then gets 401 invalid_token."""
    token = mint_token("frames:read")
    before = http.get(f"{API}/frames", headers=bearer(token))
    store(sandbox).expire_token(token)

    after = http.get(f"{API}/frames", headers=bearer(token))

    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "invalid_token"
    assert "invalid_token" in after.headers["WWW-Authenticate"]


def test_token_ttl_elapses(http: httpx.Client, mint_token: MintToken) -> None:
    """A token minted with a zero TTL is already expired."""
    response = http.get(f"{API}/frames", headers=bearer(mint_token("frames:read", ttl=0)))

    assert response.status_code == 401


def test_admin_mints_and_revokes_token(http: httpx.Client) -> None:
    """Tokens from /_sandbox/tokens work until revoked through /_sandbox/tokens/revoke."""
    minted = http.post("/_sandbox/tokens", json={"scopes": ["frames:read"], "ttl": 60}).json()
    token = minted["access_token"]
    before = http.get(f"{API}/frames", headers=bearer(token))
    revoked = http.post("/_sandbox/tokens/revoke", json={"token": token})

    after = http.get(f"{API}/frames", headers=bearer(token))

    assert minted["scope"] == "frames:read"
    assert before.status_code == 200
    assert revoked.status_code == 204
    assert after.status_code == 401
