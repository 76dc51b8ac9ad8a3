"""Unit tests of PartnerClient and the retry loop, driven through httpx.MockTransport."""

# Fake tokens, secrets and token URLs below are test data, not credentials.

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import sync.retry
from sync.client import PartnerClient
from sync.errors import (
    InsufficientScopeError,
    NotFoundError,
    PartnerAPIError,
    PartnerRequestError,
    PartnerTransportError,
    RateLimitedError,
    ServerError,
    TransientAPIError,
    UnauthorizedError,
)
from sync.models import InventoryResponse, InventoryUpdate
from sync.retry import RetryPolicy, call_with_retry, parse_retry_after, retry_delay

BASE_URL = "http://partner.test"
SECRET_TOKEN = "at_live_5f2b9c1e7d4a8b3c6e0f"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the default retry sleep, so no test waits for real."""
    slept: list[float] = []
    monkeypatch.setattr(sync.retry, "sleep", slept.append)
    return slept


class RecordingSleep:
    """Injectable sleep that records each wait instead of blocking."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class StaticBearer(httpx.Auth):
    """Adds a fixed bearer token, standing in for OAuthTokenAuth."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {SECRET_TOKEN}"
        yield request


def make_client(
    handler: Handler,
    *,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    page_limit: int = 500,
    concurrency: int = 4,
) -> PartnerClient:
    return PartnerClient(
        BASE_URL,
        auth=StaticBearer(),
        retry=retry or RetryPolicy.disabled(),
        transport=httpx.MockTransport(handler),
        sleep=sleep,
        page_limit=page_limit,
        concurrency=concurrency,
    )


def error_response(status: int, code: str, message: str = "", **extra: Any) -> httpx.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return httpx.Response(status, json=body)


def frame_json(number: int) -> dict[str, Any]:
    return {
        "id": f"frm_{number:08d}",
        "sku": f"FR-{number:05d}",
        "upc": None,
        "brand": "Ray-Ban",
        "model": "RX5154",
        "quantity": number % 3,
        "in_stock": number % 3 > 0,
        "price": "288.99",
        "currency": "USD",
        "updated_at": "2026-12-04T19:57:07.123456Z",
    }


def order_json(order_id: str = "ord_00000001", status: str = "pending") -> dict[str, Any]:
    return {
        "id": order_id,
        "status": status,
        "created_at": "2026-12-04T19:57:07Z",
        "updated_at": "2026-12-04T19:57:07Z",
        "currency": "USD",
        "total": "288.99",
        "items": [],
    }


def paged_frames(total: int, *, served: int | None = None) -> Handler:
    """Serve ``served`` frames (default ``total``) while reporting ``total`` in pagination."""
    frames = [frame_json(number) for number in range(1, (served or total) + 1)]

    def handler(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params["offset"])
        data = frames[offset : offset + limit]
        pagination = {"limit": limit, "offset": offset, "total": total}
        return httpx.Response(200, json={"data": data, "pagination": pagination})

    return handler


# Status mapping

STATUS_CASES = [
    pytest.param(400, "invalid_request", {}, PartnerRequestError, id="400-request-error"),
    pytest.param(401, "invalid_token", {}, UnauthorizedError, id="401-unauthorized"),
    pytest.param(
        403,
        "insufficient_scope",
        {"required_scope": "orders:read"},
        InsufficientScopeError,
        id="403-insufficient-scope",
    ),
    pytest.param(404, "not_found", {}, NotFoundError, id="404-not-found"),
    pytest.param(409, "invalid_transition", {}, PartnerRequestError, id="409-request-error"),
    pytest.param(413, "batch_too_large", {}, PartnerRequestError, id="413-request-error"),
    pytest.param(422, "validation_failed", {}, PartnerRequestError, id="422-request-error"),
    pytest.param(429, "rate_limited", {}, RateLimitedError, id="429-rate-limited"),
    pytest.param(500, "server_error", {}, ServerError, id="500-server-error"),
    pytest.param(502, "server_error", {}, ServerError, id="502-server-error"),
    pytest.param(503, "server_error", {}, ServerError, id="503-server-error"),
]


@pytest.mark.parametrize(("status", "code", "extra", "expected"), STATUS_CASES)
def test_raise_for_status_maps_status(
    status: int, code: str, extra: dict[str, str], expected: type[PartnerAPIError]
) -> None:
    """Each error status becomes its own exception carrying status, method and endpoint."""
    client = make_client(lambda request: error_response(status, code, "it failed", **extra))

    with pytest.raises(expected) as caught:
        client.get_order("ord_00000001")

    assert type(caught.value) is expected
    assert caught.value.status == status
    assert caught.value.method == "GET"
    assert caught.value.endpoint == "/api/v1/partner/orders/ord_00000001"
    assert code in caught.value.excerpt


def test_raise_for_status_names_required_scope() -> None:
    """A 403 carries the scope named by the error body, also in its message."""
    client = make_client(
        lambda request: error_response(
            403,
            "insufficient_scope",
            "inventory:write is required",
            required_scope="inventory:write",
        )
    )

    with pytest.raises(InsufficientScopeError) as caught:
        client.post_inventory([InventoryUpdate(frame_id="frm_1", quantity=1)], idempotency_key="k1")

    assert caught.value.required_scope == "inventory:write"
    assert "inventory:write" in str(caught.value)


def test_raise_for_status_parses_retry_after() -> None:
    """A 429 carries the Retry-After seconds."""
    client = make_client(
        lambda request: httpx.Response(
            429, headers={"Retry-After": "7"}, json={"error": {"code": "rate_limited"}}
        )
    )

    with pytest.raises(RateLimitedError) as caught:
        client.get_order("ord_1")

    assert caught.value.retry_after == 7.0


TRANSPORT_CASES = [
    pytest.param(httpx.ConnectError("refused"), id="connect-refused"),
    pytest.param(httpx.ReadTimeout("slow"), id="read-timeout"),
    pytest.param(httpx.RemoteProtocolError("reset"), id="protocol-error"),
]


@pytest.mark.parametrize("failure", TRANSPORT_CASES)
def test_send_transport_failure_raises_transport_error(failure: httpx.TransportError) -> None:
    """A request without a response becomes a PartnerTransportError with no status."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    client = make_client(handler)

    with pytest.raises(PartnerTransportError) as caught:
        client.get_order("ord_1")

    assert caught.value.status is None
    assert caught.value.__cause__ is failure


def test_client_timeouts_cover_every_phase() -> None:
    """The configured timeout applies to connect, read, write and pool acquisition."""
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=order_json())

    client = PartnerClient(
        BASE_URL, timeout=12.5, transport=httpx.MockTransport(handler), retry=RetryPolicy.disabled()
    )
    client.get_order("ord_1")

    assert seen == [{"connect": 12.5, "read": 12.5, "write": 12.5, "pool": 12.5}]


def test_response_invalid_body_raises_without_values() -> None:
    """A body that breaks the contract raises PartnerAPIError naming the field, not its value."""
    broken = order_json()
    broken["status"] = "patient-secret-value"
    client = make_client(lambda request: httpx.Response(200, json=broken))

    with pytest.raises(PartnerAPIError) as caught:
        client.get_order("ord_1")

    assert "status" in str(caught.value)
    assert "patient-secret-value" not in str(caught.value)


# Secrets stay out of errors and logs


def test_errors_never_contain_token(caplog: pytest.LogCaptureFixture) -> None:
    """A server that echoes the Authorization header leaks no token into errors or logs."""
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["Authorization"]
        return error_response(400, "invalid_request", f"bad header {echoed}", echo=echoed)

    client = make_client(handler)

    with pytest.raises(PartnerRequestError) as caught:
        client.get_order("ord_1")

    assert SECRET_TOKEN not in str(caught.value)
    assert SECRET_TOKEN not in caught.value.excerpt
    assert "[redacted]" in caught.value.excerpt
    assert SECRET_TOKEN not in caplog.text


# Retry-After parsing

NOW = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC)

RETRY_AFTER_CASES = [
    pytest.param("5", 5.0, id="seconds"),
    pytest.param(" 12 ", 12.0, id="seconds-padded"),
    pytest.param("0", 0.0, id="zero"),
    pytest.param("1.5", 1.5, id="fractional"),
    pytest.param("-3", None, id="negative"),
    pytest.param("soon", None, id="garbage"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="absent"),
    pytest.param("Fri, 04 Dec 2026 20:00:30 GMT", 30.0, id="http-date-future"),
    pytest.param("Fri, 04 Dec 2026 19:59:00 GMT", 0.0, id="http-date-past"),
]


@pytest.mark.parametrize(("header", "expected"), RETRY_AFTER_CASES)
def test_parse_retry_after_values(header: str | None, expected: float | None) -> None:
    """Retry-After is read as delay-seconds or as an HTTP-date relative to now."""
    assert parse_retry_after(header, now=NOW) == expected


# Backoff bounds


def test_backoff_full_jitter_stays_within_cap() -> None:
    """Every jittered wait lies between zero and the exponential cap."""
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0)
    rng = random.Random(7)  # noqa: S311  # seeded jitter, not cryptography

    for retry_number in range(1, 12):
        cap = min(30.0, 0.5 * 2 ** (retry_number - 1))
        waits = [policy.backoff(retry_number, rng) for _ in range(200)]
        assert min(waits) >= 0.0
        assert max(waits) <= cap
        assert max(waits) > cap / 2


def test_backoff_without_jitter_doubles_to_max() -> None:
    """Without jitter the wait doubles per retry and stops at max_delay."""
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=False)

    waits = [policy.backoff(number) for number in range(1, 6)]

    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_huge_retry_number_stays_at_max() -> None:
    """An overflowing exponent falls back to max_delay."""
    policy = RetryPolicy(max_delay=9.0, jitter=False)

    assert policy.backoff(5000) == 9.0


def rate_limited(retry_after: float | None) -> RateLimitedError:
    return RateLimitedError(
        "Too Many Requests", retry_after=retry_after, status=429, method="GET", endpoint="/x"
    )


def server_error() -> ServerError:
    return ServerError("Service Unavailable", status=503, method="GET", endpoint="/x")


DELAY_CASES = [
    pytest.param(RetryPolicy(jitter=False), 1, rate_limited(4.0), 0.0, 4.0, id="retry-after-floor"),
    pytest.param(
        RetryPolicy(base_delay=8, jitter=False), 1, rate_limited(2.0), 0.0, 8.0, id="backoff-above"
    ),
    pytest.param(RetryPolicy(max_delay=5.0), 1, rate_limited(6.0), 0.0, None, id="over-max-delay"),
    pytest.param(
        RetryPolicy(total_timeout=10.0), 1, rate_limited(3.0), 8.0, None, id="over-total-timeout"
    ),
    pytest.param(RetryPolicy(attempts=3), 3, server_error(), 0.0, None, id="attempts-used-up"),
    pytest.param(RetryPolicy(jitter=False), 2, server_error(), 0.0, 1.0, id="exponential"),
    pytest.param(RetryPolicy.disabled(), 1, server_error(), 0.0, None, id="disabled"),
]


@pytest.mark.parametrize(("policy", "number", "error", "elapsed", "expected"), DELAY_CASES)
def test_retry_delay_limits(
    policy: RetryPolicy,
    number: int,
    error: TransientAPIError,
    elapsed: float,
    expected: float | None,
) -> None:
    """The wait honours Retry-After as a floor and gives up beyond the policy's caps."""
    assert retry_delay(policy, number, error, elapsed=elapsed) == expected


def test_call_with_retry_gives_up_on_total_timeout() -> None:
    """The loop stops when the next wait would pass total_timeout, even with attempts left."""
    clock_values = iter([0.0, 1.0, 2.0, 50.0])
    sleeper = RecordingSleep()
    calls = 0

    def operation() -> None:
        nonlocal calls
        calls += 1
        raise server_error()

    with pytest.raises(ServerError):
        call_with_retry(
            operation,
            policy=RetryPolicy(attempts=10, base_delay=1.0, total_timeout=30.0),
            description="GET /x",
            sleep_fn=sleeper,
            clock=lambda: next(clock_values),
        )

    assert calls == 3
    assert len(sleeper.calls) == 2


# Retries through the client


def flaky(failures: list[httpx.Response], success: httpx.Response) -> Handler:
    responses = iter(failures)

    def handler(request: httpx.Request) -> httpx.Response:
        return next(responses, success)

    return handler


def test_request_retries_server_error() -> None:
    """Two 503s and then a 200 give the order after two waits and three requests."""
    sleeper = RecordingSleep()
    handler = flaky(
        [error_response(503, "server_error"), error_response(503, "server_error")],
        httpx.Response(200, json=order_json()),
    )
    client = make_client(handler, retry=RetryPolicy(), sleep=sleeper)

    order = client.get_order("ord_00000001")

    assert order.id == "ord_00000001"
    assert client.request_counts["GET /api/v1/partner/orders/{orderId}"] == 3
    assert len(sleeper.calls) == 2


def test_request_waits_for_retry_after() -> None:
    """A 429 with Retry-After: 3 makes the client wait at least 3 seconds before retrying."""
    sleeper = RecordingSleep()
    handler = flaky(
        [
            httpx.Response(
                429, headers={"Retry-After": "3"}, json={"error": {"code": "rate_limited"}}
            )
        ],
        httpx.Response(200, json=order_json()),
    )
    client = make_client(handler, retry=RetryPolicy(base_delay=0.01), sleep=sleeper)

    client.get_order("ord_1")

    assert len(sleeper.calls) == 1
    assert sleeper.calls[0] >= 3.0


def test_request_does_not_retry_client_error() -> None:
    """A 404 is raised after one request and no wait."""
    sleeper = RecordingSleep()
    client = make_client(
        lambda request: error_response(404, "not_found"), retry=RetryPolicy(), sleep=sleeper
    )

    with pytest.raises(NotFoundError):
        client.get_order("ord_1")

    assert client.request_counts["GET /api/v1/partner/orders/{orderId}"] == 1
    assert sleeper.calls == []


def test_request_raises_last_error_after_attempts() -> None:
    """A server that keeps failing gets exactly `attempts` requests, then its error is raised."""
    sleeper = RecordingSleep()
    client = make_client(
        lambda request: error_response(500, "server_error"),
        retry=RetryPolicy(attempts=4),
        sleep=sleeper,
    )

    with pytest.raises(ServerError):
        client.get_order("ord_1")

    assert client.request_counts["GET /api/v1/partner/orders/{orderId}"] == 4
    assert len(sleeper.calls) == 3


def test_request_default_sleep_module(no_real_sleep: list[float]) -> None:
    """Without an injected sleep the client waits through sync.retry.sleep."""
    handler = flaky([error_response(502, "server_error")], httpx.Response(200, json=order_json()))
    client = make_client(handler, retry=RetryPolicy())

    client.get_order("ord_1")

    assert len(no_real_sleep) == 1


def test_create_webhook_not_retried_on_server_error() -> None:
    """A 500 on webhook creation is raised at once, because a retry could create a duplicate."""
    sleeper = RecordingSleep()
    client = make_client(
        lambda request: error_response(500, "server_error"), retry=RetryPolicy(), sleep=sleeper
    )

    with pytest.raises(ServerError):
        client.create_webhook("http://127.0.0.1:9/hook", ["order.created"])

    assert client.request_counts["POST /api/v1/partner/webhooks"] == 1


def test_create_webhook_retried_on_rate_limit() -> None:
    """A 429 on webhook creation is retried, because the server did not act on it."""
    created = {
        "id": "wh_1",
        "url": "http://127.0.0.1:9/hook",
        "events": ["order.created"],
        "enabled": True,
        "created_at": "2026-12-04T19:57:07Z",
        "secret": "whsec_abc",
    }
    handler = flaky(
        [
            httpx.Response(
                429, headers={"Retry-After": "1"}, json={"error": {"code": "rate_limited"}}
            )
        ],
        httpx.Response(201, json=created),
    )
    client = make_client(handler, retry=RetryPolicy(), sleep=RecordingSleep())

    hook = client.create_webhook("http://127.0.0.1:9/hook", ["order.created"])

    assert hook.secret == "whsec_abc"
    assert client.request_counts["POST /api/v1/partner/webhooks"] == 2


# Logging


def test_request_logs_one_line_per_call(caplog: pytest.LogCaptureFixture) -> None:
    """Each call logs method, path and status once; a retry logs a warning with the attempt."""
    caplog.set_level(logging.DEBUG, logger="eyekiosk_sync.client")
    handler = flaky([error_response(503, "server_error")], httpx.Response(200, json=order_json()))
    client = make_client(handler, retry=RetryPolicy(), sleep=RecordingSleep())

    client.get_order("ord_1")

    calls = [record for record in caplog.records if getattr(record, "event", "") == "partner_call"]
    retries = [
        record for record in caplog.records if getattr(record, "event", "") == "partner_call_retry"
    ]
    assert [record.getMessage().split()[:3] for record in calls] == [
        ["GET", "/api/v1/partner/orders/ord_1", "503"],
        ["GET", "/api/v1/partner/orders/ord_1", "200"],
    ]
    assert len(retries) == 1
    assert retries[0].levelno == logging.WARNING
    assert "attempt 1 of 5" in retries[0].getMessage()
    assert "ServerError" in retries[0].getMessage()


# Paging


def test_iter_frame_pages_stops_at_total() -> None:
    """Paging stops once `total` frames were seen, without asking for an empty page.

    Every page after the first repeats the last frame read, as the anchor that
    proves nothing moved, so it brings limit - 1 new frames.
    """
    client = make_client(paged_frames(5), page_limit=2)

    pages = list(client.iter_frame_pages())

    assert [len(page) for page in pages] == [2, 1, 1, 1]
    assert [frame.id for page in pages for frame in page] == [
        f"frm_{number:08d}" for number in range(1, 6)
    ]
    assert client.request_counts["GET /api/v1/partner/frames"] == 4


def test_iter_frame_pages_stops_at_empty_page() -> None:
    """Paging stops at an empty page even when `total` promised more."""
    client = make_client(paged_frames(10, served=3), page_limit=2)

    frames = list(client.iter_frames())

    assert [frame.id for frame in frames] == ["frm_00000001", "frm_00000002", "frm_00000003"]
    assert client.request_counts["GET /api/v1/partner/frames"] == 3


def test_iter_frame_pages_empty_list() -> None:
    """An empty list costs one request and yields nothing."""
    client = make_client(paged_frames(0))

    assert list(client.iter_frame_pages()) == []
    assert client.request_counts["GET /api/v1/partner/frames"] == 1


def test_iter_frame_pages_advances_by_items_returned() -> None:
    """A server returning fewer items than the limit moves the offset by what it returned.

    All frames share one stamp here, so each request starts at the frame
    before the new ones, which is the anchor of the stamp-anchored paging.
    """
    offsets: list[int] = []
    frames = [frame_json(number) for number in range(1, 6)]

    def handler(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        offsets.append(offset)
        data = frames[offset : offset + 2]  # ignores limit=500
        return httpx.Response(
            200, json={"data": data, "pagination": {"limit": 2, "offset": offset, "total": 5}}
        )

    client = make_client(handler)

    assert len(list(client.iter_frames())) == 5
    assert offsets == [0, 1, 2, 3]


def test_iter_frame_pages_sends_filters() -> None:
    """Filters go out as query parameters, the timestamp in UTC with a Z suffix."""
    seen: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        return paged_frames(0)(request)

    client = make_client(handler, page_limit=100)
    since = datetime(2026, 12, 4, 21, 0, tzinfo=UTC) + timedelta(hours=0)

    list(client.iter_frame_pages(updated_since=since, brand="Ray-Ban", in_stock=False))

    assert seen[0]["updated_since"] == "2026-12-04T21:00:00Z"
    assert seen[0]["brand"] == "Ray-Ban"
    assert seen[0]["in_stock"] == "false"
    assert seen[0]["limit"] == "100"
    assert seen[0]["offset"] == "0"


def test_iter_orders_sends_since_and_status() -> None:
    """Order filters go out as `since` and `status`."""
    seen: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        return httpx.Response(
            200,
            json={"data": [order_json()], "pagination": {"limit": 500, "offset": 0, "total": 1}},
        )

    client = make_client(handler)
    since = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    orders = list(client.iter_orders(since=since, status="pending"))

    assert [order.id for order in orders] == ["ord_00000001"]
    assert seen[0]["since"] == "2026-12-04T12:00:00Z"
    assert seen[0]["status"] == "pending"


# Orders and webhooks


def test_update_order_status_counts_templated_path() -> None:
    """A PATCH of one order is counted under the templated path and sends the status."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=order_json(status="in_progress"))

    client = make_client(handler)

    order = client.update_order_status("ord_00000001", "in_progress")

    assert order.status == "in_progress"
    assert bodies == [{"status": "in_progress"}]
    assert client.request_counts == {"PATCH /api/v1/partner/orders/{orderId}": 1}


def test_get_order_quotes_path_segment() -> None:
    """An id with a slash stays one path segment."""
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return error_response(404, "not_found")

    client = make_client(handler)

    with pytest.raises(NotFoundError):
        client.get_order("../frames")

    assert paths == ["/api/v1/partner/orders/..%2Fframes"]


def test_update_webhook_sends_only_given_fields() -> None:
    """Fields left as None are not sent in the PATCH body."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(
            200,
            json={
                "id": "wh_1",
                "url": "http://127.0.0.1:9/hook",
                "events": ["order.created"],
                "enabled": False,
                "created_at": "2026-12-04T19:57:07Z",
            },
        )

    client = make_client(handler)

    hook = client.update_webhook("wh_1", enabled=False)

    assert hook.enabled is False
    assert bodies == [{"enabled": False}]


def test_delete_webhook_accepts_no_content() -> None:
    """A 204 on delete raises nothing and is counted under the templated path."""
    client = make_client(lambda request: httpx.Response(204))

    client.delete_webhook("wh_1")

    assert client.request_counts == {"DELETE /api/v1/partner/webhooks/{webhookId}": 1}


# Inventory


def inventory_echo(request: httpx.Request) -> httpx.Response:
    updates = json.loads(request.content)["updates"]
    results = [{"frame_id": update["frame_id"], "status": "updated"} for update in updates]
    return httpx.Response(200, json={"results": results, "updated": len(results), "rejected": 0})


def updates(count: int) -> list[InventoryUpdate]:
    return [
        InventoryUpdate(frame_id=f"frm_{number:08d}", quantity=number) for number in range(count)
    ]


def test_post_inventory_rejects_over_100() -> None:
    """A batch of 101 updates raises ValueError before any request."""
    client = make_client(inventory_echo)

    with pytest.raises(ValueError, match="at most 100"):
        client.post_inventory(updates(101), idempotency_key="k")

    assert sum(client.request_counts.values()) == 0


def test_post_inventory_sends_key_and_omits_absent_fields() -> None:
    """The batch carries its Idempotency-Key, and an absent price is not sent as null."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inventory_echo(request)

    client = make_client(handler)

    response = client.post_inventory(
        [InventoryUpdate(frame_id="frm_1", quantity=3)], idempotency_key="batch-1"
    )

    assert response.updated == 1
    assert seen[0].headers["Idempotency-Key"] == "batch-1"
    assert json.loads(seen[0].content) == {"updates": [{"frame_id": "frm_1", "quantity": 3}]}


def test_post_inventory_retries_with_same_key() -> None:
    """A retried batch repeats the same Idempotency-Key and body."""
    seen: list[tuple[str, bytes]] = []
    failures = iter([error_response(503, "server_error")])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["Idempotency-Key"], request.content))
        return next(failures, None) or inventory_echo(request)

    client = make_client(handler, retry=RetryPolicy(), sleep=RecordingSleep())

    client.post_inventory(updates(2), idempotency_key="batch-7")

    assert len(seen) == 2
    assert seen[0] == seen[1]


def test_post_inventory_batches_reports_each_batch() -> None:
    """101 updates in two batches are two requests, each reported under its key."""
    results: dict[str, InventoryResponse | PartnerAPIError] = {}
    all_updates = updates(101)
    client = make_client(inventory_echo)

    client.post_inventory_batches(
        [("a", all_updates[:100]), ("b", all_updates[100:])],
        on_result=lambda key, outcome: results.__setitem__(key, outcome),
    )

    assert client.request_counts["POST /api/v1/partner/inventory"] == 2
    assert isinstance(results["a"], InventoryResponse)
    assert isinstance(results["b"], InventoryResponse)
    assert len(results["a"].results) == 100
    assert len(results["b"].results) == 1


def test_post_inventory_batches_failure_does_not_stop_others() -> None:
    """A batch that fails is reported as its error while the other batches succeed."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["Idempotency-Key"] == "bad":
            return error_response(422, "validation_failed")
        return inventory_echo(request)

    results: dict[str, InventoryResponse | PartnerAPIError] = {}
    client = make_client(handler)

    client.post_inventory_batches(
        [("ok-1", updates(3)), ("bad", updates(2)), ("ok-2", updates(1))],
        on_result=lambda key, outcome: results.__setitem__(key, outcome),
    )

    assert set(results) == {"ok-1", "bad", "ok-2"}
    assert isinstance(results["bad"], PartnerRequestError)
    assert isinstance(results["ok-1"], InventoryResponse)
    assert isinstance(results["ok-2"], InventoryResponse)


def test_post_inventory_batches_calls_back_in_caller_thread() -> None:
    """on_result runs in the calling thread, never in a worker."""
    threads: set[int] = set()
    client = make_client(inventory_echo, concurrency=3)

    client.post_inventory_batches(
        [(f"k{number}", updates(2)) for number in range(6)],
        on_result=lambda key, outcome: threads.add(threading.get_ident()),
    )

    assert threads == {threading.get_ident()}


def test_post_inventory_batches_runs_concurrently_up_to_limit() -> None:
    """No more than `concurrency` batches are in flight at once, and more than one is."""
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    gate = threading.Barrier(2, timeout=5)

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            gate.wait()
        except threading.BrokenBarrierError:
            pass
        with lock:
            in_flight -= 1
        return inventory_echo(request)

    client = make_client(handler, concurrency=2)

    client.post_inventory_batches(
        [(f"k{number}", updates(1)) for number in range(6)], on_result=lambda key, outcome: None
    )

    assert peak == 2


def test_post_inventory_batches_rejects_duplicate_keys() -> None:
    """Two batches with one key raise ValueError before anything is sent."""
    client = make_client(inventory_echo)

    with pytest.raises(ValueError, match="unique"):
        client.post_inventory_batches(
            [("same", updates(1)), ("same", updates(1))], on_result=lambda key, outcome: None
        )

    assert sum(client.request_counts.values()) == 0


def test_post_inventory_batches_raises_non_api_error() -> None:
    """An error outside PartnerAPIError, such as an auth failure, is raised after reporting."""

    class Broken(Exception):
        pass

    class FailingAuth(httpx.Auth):
        def auth_flow(
            self, request: httpx.Request
        ) -> Generator[httpx.Request, httpx.Response, None]:
            raise Broken("refresh rejected")
            yield request  # pragma: no cover

    client = PartnerClient(
        BASE_URL,
        auth=FailingAuth(),
        transport=httpx.MockTransport(inventory_echo),
        retry=RetryPolicy.disabled(),
    )
    reported: list[str] = []

    with pytest.raises(Broken):
        client.post_inventory_batches(
            [("a", updates(1)), ("b", updates(1))],
            on_result=lambda key, outcome: reported.append(key),
        )

    assert reported == []


def test_close_closes_auth_and_is_repeatable() -> None:
    """close() closes an auth that has close(), and a second close() does nothing."""
    closed: list[bool] = []

    class ClosableAuth(StaticBearer):
        def close(self) -> None:
            closed.append(True)

    client = PartnerClient(
        BASE_URL, auth=ClosableAuth(), transport=httpx.MockTransport(inventory_echo)
    )

    client.close()
    client.close()

    assert closed == [True, True]


def test_iter_frame_pages_rereads_stamp_when_frame_moves() -> None:
    """A frame that changes mid-paging makes the pager reread its stamp, so none is skipped.

    Three frames share one stamp. After the first page the first frame
    changes, which would shift an offset-only reader past the third frame.
    """
    stamps = {1: "2026-12-04T10:00:00Z", 2: "2026-12-04T10:00:00Z", 3: "2026-12-04T10:00:00Z",
              4: "2026-12-04T10:00:01Z", 5: "2026-12-04T10:00:02Z"}  # fmt: skip
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        if requests == 2:
            stamps[1] = "2026-12-04T10:00:03Z"
        since = request.url.params.get("updated_since")
        rows = sorted(
            (stamp, number) for number, stamp in stamps.items() if since is None or stamp >= since
        )
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        data = [dict(frame_json(n), updated_at=stamp) for stamp, n in rows[offset : offset + limit]]
        pagination = {"limit": limit, "offset": offset, "total": len(rows)}
        return httpx.Response(200, json={"data": data, "pagination": pagination})

    client = make_client(handler, page_limit=2)
    pages = client.iter_frame_pages()

    ids = [frame.id for page in pages for frame in page]

    assert sorted(set(ids)) == [f"frm_{number:08d}" for number in range(1, 6)]
    assert pages.rereads >= 1
    assert pages.complete


def test_iter_frame_pages_anchor_must_keep_its_stamp() -> None:
    """An anchor that moved to a later stamp is not trusted: unchanged frames are not skipped.

    With second-precision stamps, two frames read at one stamp both change
    between pages. The anchor sits at the expected offset again, but under a
    new stamp, so a reader that trusted the offset would skip the third frame.
    """
    stamps = {1: "2026-12-04T10:00:00Z", 2: "2026-12-04T10:00:00Z", 3: "2026-12-04T10:00:10Z"}
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        if requests == 2:
            stamps[2] = "2026-12-04T10:00:20Z"
            stamps[1] = "2026-12-04T10:00:21Z"
        since = request.url.params.get("updated_since")
        rows = sorted(
            (stamp, number) for number, stamp in stamps.items() if since is None or stamp >= since
        )
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        data = [dict(frame_json(n), updated_at=stamp) for stamp, n in rows[offset : offset + limit]]
        pagination = {"limit": limit, "offset": offset, "total": len(rows)}
        return httpx.Response(200, json={"data": data, "pagination": pagination})

    ids = {
        frame.id for page in make_client(handler, page_limit=2).iter_frame_pages() for frame in page
    }

    assert "frm_00000003" in ids


def test_client_rejects_page_limit_of_one() -> None:
    """A page of one item would hold only the anchor, so page_limit must be at least 2."""
    with pytest.raises(ValueError, match="page_limit must be 2 to 500"):
        make_client(paged_frames(0), page_limit=1)
