"""Injected faults: 429 with Retry-After, 5xx and latency, limited by count, path and method."""

from __future__ import annotations

import time

import httpx

from sync.sandbox import SandboxServer
from tests.conftest import MintToken, store
from tests.sync.sandbox.conftest import bearer

FRAMES = "/api/v1/partner/frames"


def test_fault_rate_limit_then_recovers(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """The next two requests get 429 with Retry-After, the third succeeds."""
    token = mint_token("frames:read")
    store(sandbox).inject_fault("rate_limit", 2, retry_after=7)

    responses = [http.get(FRAMES, headers=bearer(token)) for _ in range(3)]

    assert [response.status_code for response in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == "7"
    assert responses[0].json()["error"]["code"] == "rate_limited"


def test_fault_server_error_over_http(http: httpx.Client, mint_token: MintToken) -> None:
    """A 502 fault added through /_sandbox/faults hits one request with a server_error body."""
    token = mint_token("frames:read")
    added = http.post("/_sandbox/faults", json={"kind": "server_error", "count": 1, "status": 502})

    failed = http.get(FRAMES, headers=bearer(token))
    recovered = http.get(FRAMES, headers=bearer(token))

    assert added.status_code == 201
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "server_error"
    assert recovered.status_code == 200


def test_fault_limited_to_method_and_path(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A fault for POST /inventory leaves GET /frames alone."""
    token = mint_token("frames:read", "inventory:write")
    store(sandbox).inject_fault(
        "server_error", 1, status=503, paths=["/api/v1/partner/inventory"], methods=["post"]
    )

    read = http.get(FRAMES, headers=bearer(token))
    write = http.post(
        "/api/v1/partner/inventory",
        json={"updates": [{"frame_id": "frm_00000001", "quantity": 1}]},
        headers=bearer(token),
    )

    assert read.status_code == 200
    assert write.status_code == 503


def test_fault_latency_delays_response(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A latency fault delays one request by about latency_ms, then answers normally."""
    token = mint_token("frames:read")
    store(sandbox).inject_fault("latency", 1, latency_ms=300)

    started = time.monotonic()
    response = http.get(FRAMES, headers=bearer(token))
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3


def test_fault_invalid_kind_rejected(http: httpx.Client) -> None:
    """An unknown fault kind is a 400 invalid_request."""
    response = http.post("/_sandbox/faults", json={"kind": "explode", "count": 1})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
