"""Admin endpoints: request counts, resets, frame edits and the inventory batch log."""

from __future__ import annotations

import httpx

from sync.sandbox import SandboxServer
from tests.conftest import MintToken, store
from tests.sync.sandbox.conftest import bearer

API = "/api/v1/partner"


def test_request_counts_by_route_template(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """Counts are keyed by method and route template, including rejected and unknown ids."""
    token = mint_token("frames:read", "orders:full")
    http.get(f"{API}/frames", headers=bearer(token))
    http.get(f"{API}/frames", params={"offset": 50}, headers=bearer(token))
    http.patch(f"{API}/orders/ord_00000042", json={"status": "shipped"}, headers=bearer(token))
    http.get(f"{API}/frames")
    http.get("/_sandbox/frames/frm_00000001")

    counts = http.get("/_sandbox/requests").json()

    assert counts["requests"] == {
        "GET /api/v1/partner/frames": 3,
        "PATCH /api/v1/partner/orders/{orderId}": 1,
    }
    assert counts["token_requests"] == 0


def test_request_counts_token_endpoint_and_reset(http: httpx.Client) -> None:
    """Token endpoint calls are counted apart, and DELETE /_sandbox/requests zeroes all counts."""
    http.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "x"})
    http.post("/oauth/token", data={"grant_type": "authorization_code"})
    before = http.get("/_sandbox/requests").json()

    reset = http.delete("/_sandbox/requests")
    after = http.get("/_sandbox/requests").json()

    assert before["token_requests"] == 2
    assert before["token_requests_by_grant"] == {"refresh_token": 1, "authorization_code": 1}
    assert before["requests"] == {}
    assert reset.status_code == 204
    assert after["token_requests"] == 0


def test_admin_frame_edit_and_lookup(http: httpx.Client) -> None:
    """PATCH /_sandbox/frames sets fields and updated_at; lookups by id and SKU agree."""
    patched = http.patch(
        "/_sandbox/frames/frm_00000004",
        json={"quantity": 11, "price": "5.50", "updated_at": "2031-02-03T04:05:06.000007Z"},
    )
    by_id = http.get("/_sandbox/frames/frm_00000004").json()
    by_sku = http.get("/_sandbox/frames", params={"sku": by_id["sku"]}).json()

    assert patched.status_code == 200
    assert by_id["quantity"] == 11
    assert by_id["price"] == "5.50"
    assert by_id["updated_at"] == "2031-02-03T04:05:06.000007Z"
    assert by_sku == by_id


def test_admin_frame_unknown_field(http: httpx.Client) -> None:
    """Setting a field the catalogue lacks is a 400 invalid_request."""
    response = http.patch("/_sandbox/frames/frm_00000004", json={"colour": "red"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_admin_sales_and_batch_log(http: httpx.Client, mint_token: MintToken) -> None:
    """POST /_sandbox/sales creates orders and the batch log lists applied batches."""
    sales = http.post("/_sandbox/sales", json={"count": 2})
    http.post(
        f"{API}/inventory",
        json={"updates": [{"frame_id": "frm_00000001", "quantity": 3}]},
        headers={**bearer(mint_token("inventory:write")), "Idempotency-Key": "k1"},
    )

    batches = http.get("/_sandbox/inventory-batches").json()["batches"]

    assert sales.status_code == 201
    assert len(sales.json()["order_ids"]) == 2
    assert len(batches) == 1
    assert batches[0]["idempotency_key"] == "k1"
    assert batches[0]["results"][0]["status"] == "updated"


def test_admin_reset_restores_seed(sandbox: SandboxServer, http: httpx.Client) -> None:
    """POST /_sandbox/reset brings frames back to their seeded values and drops orders."""
    seeded = store(sandbox).get_frame("frm_00000001")
    store(sandbox).set_frame("frm_00000001", quantity=99)
    store(sandbox).create_sales(1)

    response = http.post("/_sandbox/reset")

    restored = store(sandbox).get_frame("frm_00000001")
    assert response.status_code == 204
    assert restored["quantity"] == seeded["quantity"]
    assert restored["price"] == seeded["price"]
    assert store(sandbox).orders.get("ord_00000001") is None
