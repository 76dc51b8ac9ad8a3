"""Orders, their status transitions and prescriptions, with simulated kiosk sales."""

from __future__ import annotations

import httpx
import pytest

from sync.models import ALLOWED_TRANSITIONS, ORDER_STATUSES, Order, Page, Prescription
from sync.sandbox import SandboxServer
from tests.conftest import MintToken, store
from tests.sync.sandbox.conftest import bearer

ORDERS = "/api/v1/partner/orders"
# Shortest path from pending to each status, along allowed transitions.
PATH_TO = {
    "pending": [],
    "in_progress": ["in_progress"],
    "completed": ["in_progress", "completed"],
    "shipped": ["in_progress", "shipped"],
    "cancelled": ["cancelled"],
}
TRANSITIONS = [(source, target) for source in ORDER_STATUSES for target in ORDER_STATUSES]


def move_to(http: httpx.Client, token: str, order_id: str, status: str) -> None:
    """Walk an order from pending to status."""
    for step in PATH_TO[status]:
        response = http.patch(f"{ORDERS}/{order_id}", json={"status": step}, headers=bearer(token))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("source", "target"), TRANSITIONS, ids=[f"{a}-to-{b}" for a, b in TRANSITIONS]
)
def test_order_transition_table(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken, source: str, target: str
) -> None:
    """Allowed changes return 200 with the new status, same status is a no-op, others are 409."""
    token = mint_token("orders:full")
    order_id = store(sandbox).create_sales(1)[0]
    move_to(http, token, order_id, source)
    before = http.get(f"{ORDERS}/{order_id}", headers=bearer(token)).json()

    response = http.patch(f"{ORDERS}/{order_id}", json={"status": target}, headers=bearer(token))

    if target == source:
        assert response.status_code == 200
        assert response.json()["updated_at"] == before["updated_at"]
    elif target in ALLOWED_TRANSITIONS[source]:
        assert response.status_code == 200
        assert response.json()["status"] == target
        assert response.json()["updated_at"] > before["updated_at"]
    else:
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "invalid_transition"


def test_order_unknown_status_422(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """An unknown status is a 422 validation_failed."""
    order_id = store(sandbox).create_sales(1)[0]

    response = http.patch(
        f"{ORDERS}/{order_id}",
        json={"status": "teleported"},
        headers=bearer(mint_token("orders:full")),
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


def test_order_unknown_id_404(http: httpx.Client, mint_token: MintToken) -> None:
    """An order id that does not exist is a 404 not_found."""
    response = http.get(f"{ORDERS}/ord_99999999", headers=bearer(mint_token("orders:read")))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_sale_takes_stock_and_lists_order(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A simulated sale decrements stock and shows up in the orders list without payment."""
    before = store(sandbox).get_frame("frm_00000001")
    order_id = store(sandbox).create_sales(frame_ids=["frm_00000001"])[0]
    token = mint_token("orders:read")

    listed = http.get(ORDERS, headers=bearer(token)).json()
    single = http.get(f"{ORDERS}/{order_id}", headers=bearer(token)).json()

    page = Page[Order].model_validate(listed)
    assert store(sandbox).get_frame("frm_00000001")["quantity"] == before["quantity"] - 1
    assert [order.id for order in page.data] == [order_id]
    assert "payment" not in listed["data"][0]
    assert Order.model_validate(single).payment is not None
    assert single["items"][0]["unit_price"] == before["price"]
    assert single["total"] == before["price"]


def test_orders_since_and_status_filters(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """since is inclusive on updated_at and status filters by current status."""
    token = mint_token("orders:full")
    first, second = store(sandbox).create_sales(2)
    changed = http.patch(
        f"{ORDERS}/{first}", json={"status": "cancelled"}, headers=bearer(token)
    ).json()

    since = http.get(ORDERS, params={"since": changed["updated_at"]}, headers=bearer(token)).json()
    pending = http.get(ORDERS, params={"status": "pending"}, headers=bearer(token)).json()

    assert [order["id"] for order in since["data"]] == [first]
    assert [order["id"] for order in pending["data"]] == [second]


def test_prescriptions_filtered_by_order(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """Each sale with a prescription adds one, and order_id selects it."""
    first, second = store(sandbox).create_sales(2)
    store(sandbox).create_sales(1, prescription=False)
    token = mint_token("prescriptions:read")

    everything = http.get("/api/v1/partner/prescriptions", headers=bearer(token)).json()
    one = http.get(
        "/api/v1/partner/prescriptions", params={"order_id": second}, headers=bearer(token)
    ).json()

    page = Page[Prescription].model_validate(everything)
    assert page.pagination.total == 2
    assert [item.order_id for item in page.data] == [first, second]
    assert [item["order_id"] for item in one["data"]] == [second]
