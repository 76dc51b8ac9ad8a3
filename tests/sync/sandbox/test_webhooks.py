"""Webhook subscriptions and signed deliveries to a loopback receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sync.models import Webhook, WebhookCreated, WebhookEvent
from sync.sandbox import SandboxServer
from tests.conftest import MintToken, store
from tests.sync.sandbox.conftest import bearer

WEBHOOKS = "/api/v1/partner/webhooks"


class Receiver:
    """A loopback HTTP server that records every POST it receives."""

    def __init__(self, status: int = 204) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A loopback webhook receiver that responds with 204."""
    with Receiver() as running:
        yield running


def subscribe(http: httpx.Client, token: str, url: str, events: list[str]) -> httpx.Response:
    """Create a subscription."""
    return http.post(WEBHOOKS, json={"url": url, "events": events}, headers=bearer(token))


def test_webhook_delivery_signed(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken, receiver: Receiver
) -> None:
    """A sale delivers order.created with headers and an HMAC-SHA256 signature of the raw body."""
    token = mint_token("webhooks:write", "webhooks:read")
    created = WebhookCreated.model_validate(
        subscribe(http, token, receiver.url, ["order.created"]).json()
    )
    order_id = store(sandbox).create_sales(1)[0]

    assert store(sandbox).wait_for_webhooks(5)

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(created.secret.encode(), body, hashlib.sha256).hexdigest()
    event = WebhookEvent.model_validate(json.loads(body))
    assert hmac.compare_digest(headers["X-Webhook-Signature"], expected)
    assert headers["X-Webhook-Event"] == "order.created"
    assert headers["X-Webhook-Id"] == event.id
    assert headers["X-Webhook-Timestamp"] == json.loads(body)["created_at"]
    assert event.type == "order.created"
    assert event.data == {"order_id": order_id}
    listed = http.get(WEBHOOKS, headers=bearer(token)).json()["data"][0]
    assert listed["delivery_status"]["last_status_code"] == 204
    assert listed["delivery_status"]["failed_deliveries"] == 0


def test_webhook_inventory_event_names_frames(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken, receiver: Receiver
) -> None:
    """An inventory batch that changes frames sends one inventory.updated with their ids."""
    token = mint_token("webhooks:write", "inventory:write")
    subscribe(http, token, receiver.url, ["inventory.updated"])
    updates = [
        {"frame_id": "frm_00000001", "quantity": 77},
        {"frame_id": "frm_00000002", "quantity": 78},
        {"frame_id": "frm_09999999", "quantity": 1},
    ]

    http.post("/api/v1/partner/inventory", json={"updates": updates}, headers=bearer(token))

    assert store(sandbox).wait_for_webhooks(5)
    assert len(receiver.requests) == 1
    payload = json.loads(receiver.requests[0][1])
    assert payload["data"] == {"frame_ids": ["frm_00000001", "frm_00000002"]}


def test_webhook_disabled_and_deleted_get_nothing(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken, receiver: Receiver
) -> None:
    """A disabled subscription gets no delivery, and a deleted one is gone from the list."""
    token = mint_token("webhooks:write", "webhooks:read")
    webhook_id = subscribe(http, token, receiver.url, ["order.created"]).json()["id"]
    patched = http.patch(f"{WEBHOOKS}/{webhook_id}", json={"enabled": False}, headers=bearer(token))
    store(sandbox).create_sales(1)
    assert store(sandbox).wait_for_webhooks(5)

    deleted = http.delete(f"{WEBHOOKS}/{webhook_id}", headers=bearer(token))
    listed = http.get(WEBHOOKS, headers=bearer(token)).json()

    assert patched.status_code == 200
    assert "secret" not in patched.json()
    Webhook.model_validate(patched.json())
    assert receiver.requests == []
    assert deleted.status_code == 204
    assert listed["pagination"]["total"] == 0


def test_webhook_secret_shown_once(
    http: httpx.Client, mint_token: MintToken, receiver: Receiver
) -> None:
    """Only the create response carries the secret."""
    token = mint_token("webhooks:write", "webhooks:read")

    created = subscribe(http, token, receiver.url, ["order.completed"])
    listed = http.get(WEBHOOKS, headers=bearer(token)).json()["data"]

    assert created.status_code == 201
    assert created.json()["secret"].startswith("whsec_")
    assert "secret" not in listed[0]


@pytest.mark.parametrize(
    "url",
    ["https://practice.example/hooks", "http://10.0.0.5/hooks", "ftp://127.0.0.1/hooks", "hooks"],
    ids=["remote-https", "private-http", "ftp-scheme", "relative"],
)
def test_webhook_non_loopback_rejected(http: httpx.Client, mint_token: MintToken, url: str) -> None:
    """A subscription that would send outside loopback is a 422 validation_failed."""
    response = subscribe(http, mint_token("webhooks:write"), url, ["order.created"])

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


def test_webhook_unknown_event_rejected(
    http: httpx.Client, mint_token: MintToken, receiver: Receiver
) -> None:
    """An unknown event type is a 422 validation_failed."""
    response = subscribe(http, mint_token("webhooks:write"), receiver.url, ["frame.deleted"])

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


def test_webhook_failed_delivery_counted(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A receiver responding with 500 raises failed_deliveries and records the status."""
    token = mint_token("webhooks:write", "webhooks:read")
    with Receiver(status=500) as failing:
        subscribe(http, token, failing.url, ["order.created"])
        store(sandbox).create_sales(1)
        assert store(sandbox).wait_for_webhooks(5)

    status = http.get(WEBHOOKS, headers=bearer(token)).json()["data"][0]["delivery_status"]
    assert status["last_status_code"] == 500
    assert status["failed_deliveries"] == 1
