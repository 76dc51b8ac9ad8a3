"""PartnerClient over real HTTP against the sandbox on loopback."""

from __future__ import annotations

from collections.abc import Callable, Generator

import httpx
import pytest

import sync.retry
from sync.client import PartnerClient
from sync.errors import (
    InsufficientScopeError,
    NotFoundError,
    PartnerAPIError,
    PartnerTransportError,
    ServerError,
)
from sync.models import API_SCOPES, InventoryResponse, InventoryUpdate
from sync.retry import RetryPolicy
from sync.sandbox.server import SandboxServer
from sync.sandbox.store import SandboxStore

FRAME_COUNT = 1203
FRAMES = "GET /api/v1/partner/frames"
INVENTORY = "POST /api/v1/partner/inventory"


class RecordingSleep:
    """Injectable sleep that records each wait instead of blocking."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class MintedBearer(httpx.Auth):
    """Adds a token minted by the sandbox, so these tests need no login."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the default retry sleep, so no test waits for real."""
    slept: list[float] = []
    monkeypatch.setattr(sync.retry, "sleep", slept.append)
    return slept


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A fresh sandbox with 1203 generated frames, so paging by 500 needs three pages."""
    return make_sandbox(frames=FRAME_COUNT)


@pytest.fixture
def store(sandbox: SandboxServer) -> SandboxStore:
    """The state of the sandbox: faults, request counts and tokens."""
    assert sandbox.store is not None
    return sandbox.store


def make_client(
    sandbox: SandboxServer,
    store: SandboxStore,
    *,
    scopes: tuple[str, ...] = API_SCOPES,
    retry: RetryPolicy | None = None,
    sleep: RecordingSleep | None = None,
    **options: object,
) -> PartnerClient:
    return PartnerClient(
        sandbox.url,
        auth=MintedBearer(store.mint_token(list(scopes))),
        retry=retry or RetryPolicy(),
        sleep=sleep,
        **options,  # type: ignore[arg-type]
    )


def test_iter_frame_pages_sandbox_pages_to_end(sandbox: SandboxServer, store: SandboxStore) -> None:
    """Paging by 500 reads all 1203 frames in three requests and stops.

    Pages after the first repeat the last frame read as their anchor.
    """
    with make_client(sandbox, store, page_limit=500) as client:
        pages = list(client.iter_frame_pages())

    ids = [frame.id for page in pages for frame in page]
    assert [len(page) for page in pages] == [500, 499, 204]
    assert len(set(ids)) == FRAME_COUNT
    assert client.request_counts[FRAMES] == 3
    assert store.request_counts()[FRAMES] == 3


def test_request_sandbox_honours_retry_after(sandbox: SandboxServer, store: SandboxStore) -> None:
    """A 429 with Retry-After: 2 is retried after a wait of at least 2 seconds."""
    store.inject_fault("rate_limit", 1, retry_after=2)
    sleeper = RecordingSleep()

    with make_client(sandbox, store, retry=RetryPolicy(base_delay=0.01), sleep=sleeper) as client:
        frames = list(client.iter_frames())

    assert len(frames) == FRAME_COUNT
    assert len(sleeper.calls) == 1
    assert sleeper.calls[0] >= 2.0
    assert store.request_counts()[FRAMES] == client.request_counts[FRAMES] == 4


def test_request_sandbox_retries_server_error(sandbox: SandboxServer, store: SandboxStore) -> None:
    """Two 502s are retried and the third attempt succeeds."""
    store.inject_fault("server_error", 2, status=502)
    sleeper = RecordingSleep()

    with make_client(sandbox, store, sleep=sleeper, page_limit=10) as client:
        first_page = next(client.iter_frame_pages())

    assert len(first_page) == 10
    assert len(sleeper.calls) == 2
    assert store.request_counts()[FRAMES] == 3


def test_request_sandbox_gives_up_after_attempts(
    sandbox: SandboxServer, store: SandboxStore
) -> None:
    """A server that keeps failing gets `attempts` requests, then ServerError is raised."""
    store.inject_fault("server_error", 10, status=503)
    sleeper = RecordingSleep()

    with make_client(sandbox, store, retry=RetryPolicy(attempts=3), sleep=sleeper) as client:
        with pytest.raises(ServerError) as caught:
            client.get_order("ord_00000001")

    assert caught.value.status == 503
    assert store.request_counts()["GET /api/v1/partner/orders/{orderId}"] == 3
    assert len(sleeper.calls) == 2


def test_request_sandbox_does_not_retry_not_found(
    sandbox: SandboxServer, store: SandboxStore
) -> None:
    """A 404 is raised after one request."""
    sleeper = RecordingSleep()

    with make_client(sandbox, store, sleep=sleeper) as client:
        with pytest.raises(NotFoundError) as caught:
            client.get_order("ord_99999999")

    assert caught.value.endpoint == "/api/v1/partner/orders/ord_99999999"
    assert store.request_counts()["GET /api/v1/partner/orders/{orderId}"] == 1
    assert sleeper.calls == []


def test_request_sandbox_reports_missing_scope(sandbox: SandboxServer, store: SandboxStore) -> None:
    """A token without inventory:write gets a 403 naming that scope, not retried."""
    update = InventoryUpdate(frame_id="frm_00000001", quantity=1)

    with make_client(sandbox, store, scopes=("frames:read",)) as client:
        with pytest.raises(InsufficientScopeError) as caught:
            client.post_inventory([update], idempotency_key="scope-test")

    assert caught.value.required_scope == "inventory:write"
    assert "inventory:write" in str(caught.value)
    assert store.request_counts()[INVENTORY] == 1


def test_request_sandbox_timeout_is_transport_error(
    sandbox: SandboxServer, store: SandboxStore
) -> None:
    """A response slower than the read timeout raises PartnerTransportError."""
    store.inject_fault("latency", 1, latency_ms=1500)

    with make_client(sandbox, store, timeout=0.3, retry=RetryPolicy.disabled()) as client:
        with pytest.raises(PartnerTransportError) as caught:
            client.get_order("ord_00000001")

    assert caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


def test_post_inventory_batches_sandbox_101_updates(
    sandbox: SandboxServer, store: SandboxStore
) -> None:
    """101 updates sent as batches of 100 and 1 are two POSTs, and every update is applied."""
    with make_client(sandbox, store, page_limit=101) as client:
        frames = next(client.iter_frame_pages())
        updates = [
            InventoryUpdate(frame_id=frame.id, quantity=frame.quantity + 1) for frame in frames
        ]
        results: dict[str, InventoryResponse | PartnerAPIError] = {}

        client.post_inventory_batches(
            [("sandbox-batch-1", updates[:100]), ("sandbox-batch-2", updates[100:])],
            on_result=lambda key, outcome: results.__setitem__(key, outcome),
        )

    first, second = results["sandbox-batch-1"], results["sandbox-batch-2"]
    assert isinstance(first, InventoryResponse)
    assert isinstance(second, InventoryResponse)
    assert first.updated == 100
    assert second.updated == 1
    assert store.request_counts()[INVENTORY] == 2
    assert client.request_counts[INVENTORY] == 2


def test_post_inventory_sandbox_retry_is_idempotent(
    sandbox: SandboxServer, store: SandboxStore
) -> None:
    """A batch retried after a 503 is applied once, because it repeats its Idempotency-Key."""
    with make_client(sandbox, store, page_limit=2, sleep=RecordingSleep()) as client:
        frame = next(client.iter_frames())
        store.inject_fault("server_error", 1, paths=["/api/v1/partner/inventory"])

        response = client.post_inventory(
            [InventoryUpdate(frame_id=frame.id, quantity=frame.quantity + 5)],
            idempotency_key="idempotent-retry",
        )
        again = client.post_inventory(
            [InventoryUpdate(frame_id=frame.id, quantity=frame.quantity + 5)],
            idempotency_key="idempotent-retry",
        )

    assert response.results[0].status == "updated"
    assert again == response
    assert store.request_counts()[INVENTORY] == 3
    assert store.get_frame(frame.id)["quantity"] == frame.quantity + 5  # type: ignore[index]
