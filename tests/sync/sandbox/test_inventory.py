"""Inventory batches: size limit, per-item rejections and idempotent replay, over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sync.models import InventoryResponse
from sync.sandbox import SandboxServer
from tests.conftest import MintToken, store
from tests.sync.sandbox.conftest import bearer

INVENTORY = "/api/v1/partner/inventory"


def test_inventory_batch_over_100_rejected(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A batch of 101 updates is a 413 batch_too_large and changes nothing."""
    updates = [{"frame_id": f"frm_{n:08d}", "quantity": 1} for n in range(1, 102)]

    response = http.post(
        INVENTORY, json={"updates": updates}, headers=bearer(mint_token("inventory:write"))
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert store(sandbox).inventory_batches() == []


def test_inventory_batch_of_100_accepted(http: httpx.Client, mint_token: MintToken) -> None:
    """A batch of exactly 100 updates is applied with one result per update."""
    updates = [{"frame_id": f"frm_{n:08d}", "quantity": 7} for n in range(1, 101)]

    response = http.post(
        INVENTORY, json={"updates": updates}, headers=bearer(mint_token("inventory:write"))
    )

    assert response.status_code == 200
    assert len(response.json()["results"]) == 100


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({"frame_id": "frm_09999999", "quantity": 1}, "unknown_frame"),
        ({"frame_id": "not-a-frame", "quantity": 1}, "unknown_frame"),
        ({"frame_id": "frm_00000002", "quantity": -1}, "invalid_quantity"),
        ({"frame_id": "frm_00000002", "quantity": 1.5}, "invalid_quantity"),
        ({"frame_id": "frm_00000002", "quantity": 100_001}, "invalid_quantity"),
        ({"frame_id": "frm_00000002", "quantity": "3"}, "invalid_quantity"),
        ({"frame_id": "frm_00000002", "price": "-1.00"}, "invalid_price"),
        ({"frame_id": "frm_00000002", "price": "1.234"}, "invalid_price"),
        ({"frame_id": "frm_00000002", "price": "abc"}, "invalid_price"),
        ({"frame_id": "frm_00000002", "quantity": 4, "price": "9.999"}, "invalid_price"),
    ],
    ids=[
        "unknown-id",
        "malformed-id",
        "negative-quantity",
        "fractional-quantity",
        "quantity-over-max",
        "quantity-string",
        "negative-price",
        "three-places",
        "price-not-decimal",
        "valid-quantity-bad-price",
    ],
)
def test_inventory_item_rejected(
    sandbox: SandboxServer,
    http: httpx.Client,
    mint_token: MintToken,
    update: dict[str, Any],
    code: str,
) -> None:
    """An invalid update is rejected with its code while the valid update beside it applies."""
    before = store(sandbox).get_frame("frm_00000002")
    valid = {"frame_id": "frm_00000001", "quantity": 42}

    response = http.post(
        INVENTORY, json={"updates": [update, valid]}, headers=bearer(mint_token("inventory:write"))
    )

    body = InventoryResponse.model_validate(response.json())
    assert response.status_code == 200
    assert body.results[0].status == "rejected"
    assert body.results[0].error is not None
    assert body.results[0].error.code == code
    assert body.results[1].status == "updated"
    assert (body.updated, body.rejected) == (1, 1)
    assert store(sandbox).get_frame("frm_00000002") == before
    assert store(sandbox).get_frame("frm_00000001")["quantity"] == 42


def test_inventory_same_values_unchanged(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """An update that repeats the frame's values reports unchanged and keeps updated_at."""
    frame = store(sandbox).get_frame("frm_00000005")
    update = {"frame_id": "frm_00000005", "quantity": frame["quantity"], "price": frame["price"]}

    response = http.post(
        INVENTORY, json={"updates": [update]}, headers=bearer(mint_token("inventory:write"))
    )

    assert response.json()["results"][0]["status"] == "unchanged"
    assert response.json()["updated"] == 0
    assert store(sandbox).get_frame("frm_00000005")["updated_at"] == frame["updated_at"]


def test_inventory_writes_strictly_increasing(http: httpx.Client, mint_token: MintToken) -> None:
    """Updates in one batch get distinct updated_at values in request order."""
    updates = [{"frame_id": f"frm_{n:08d}", "quantity": 50} for n in range(10, 20)]

    response = http.post(
        INVENTORY, json={"updates": updates}, headers=bearer(mint_token("inventory:write"))
    )

    stamps = [item["updated_at"] for item in response.json()["results"]]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)


def test_inventory_idempotency_replay(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A repeated key and body returns the stored response and applies nothing again."""
    headers = {**bearer(mint_token("inventory:write")), "Idempotency-Key": "batch-1"}
    batch = {"updates": [{"frame_id": "frm_00000001", "quantity": 9}]}
    first = http.post(INVENTORY, json=batch, headers=headers)
    store(sandbox).set_frame("frm_00000001", quantity=1)

    second = http.post(INVENTORY, json=batch, headers=headers)

    assert second.status_code == 200
    assert second.json() == first.json()
    assert store(sandbox).get_frame("frm_00000001")["quantity"] == 1
    assert len(store(sandbox).inventory_batches()) == 1


def test_inventory_idempotency_key_reused(http: httpx.Client, mint_token: MintToken) -> None:
    """The same key with another body is a 422 idempotency_key_reused."""
    headers = {**bearer(mint_token("inventory:write")), "Idempotency-Key": "batch-2"}
    http.post(
        INVENTORY, json={"updates": [{"frame_id": "frm_00000001", "quantity": 9}]}, headers=headers
    )

    response = http.post(
        INVENTORY, json={"updates": [{"frame_id": "frm_00000001", "quantity": 8}]}, headers=headers
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"updates": []}, 422, "validation_failed"),
        ({"changes": []}, 422, "validation_failed"),
        ({"updates": [{"quantity": 1}]}, 422, "validation_failed"),
        ({"updates": [{"frame_id": "frm_00000001"}]}, 422, "validation_failed"),
    ],
    ids=["empty", "no-updates-key", "no-frame-id", "no-fields"],
)
def test_inventory_malformed_batch(
    http: httpx.Client, mint_token: MintToken, body: dict[str, Any], status: int, code: str
) -> None:
    """A batch without usable updates is rejected as a whole with the contract's error body."""
    response = http.post(INVENTORY, json=body, headers=bearer(mint_token("inventory:write")))

    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_inventory_invalid_json(http: httpx.Client, mint_token: MintToken) -> None:
    """A body that is not JSON is a 400 invalid_request."""
    response = http.post(
        INVENTORY, content=b"{not json", headers=bearer(mint_token("inventory:write"))
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
