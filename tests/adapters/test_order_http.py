"""The HTTP order sink against a loopback receiver that responds with scripted statuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.base import OrderDelivery, SourceContext
from adapters.order_http import HttpOrderSink, HttpSinkOptions
from sync.errors import ConfigError

ORDER = {"id": "ord_00000001", "status": "pending", "updated_at": "2026-12-04T19:57:07.000001Z"}
RX = [{"id": "rx_00000001", "order_id": "ord_00000001", "od": {"sphere": "-1.25"}}]


@dataclass
class Receiver:
    """A loopback HTTP server that records each POST and responds with the next scripted status."""

    statuses: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
            )
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/orders?key=abc"
    yield state
    server.shutdown()
    server.server_close()


def _sink(tmp_path: Path, url: str, **options: Any) -> tuple[HttpOrderSink, list[float]]:
    context = SourceContext(job="shop", config_dir=tmp_path, state_dir=tmp_path)
    sink = HttpOrderSink.from_mapping({"url": url, **options}, context=context)
    assert isinstance(sink, HttpOrderSink)
    waits: list[float] = []
    sink.sleep = waits.append
    return sink, waits


def _delivery(order_id: str = "ord_00000001") -> OrderDelivery:
    return OrderDelivery(order={**ORDER, "id": order_id}, prescriptions=list(RX))


def test_http_sink_posts_order_with_key(tmp_path: Path, receiver: Receiver) -> None:
    """A 2xx delivers the order; the body contains the order and the key names id and updated_at."""
    sink, _ = _sink(tmp_path, receiver.url)

    results = sink.deliver([_delivery()])
    sink.close()

    request = receiver.requests[0]
    assert results[0].delivered
    assert request["headers"]["Idempotency-Key"] == "ord_00000001:2026-12-04T19:57:07.000001Z"
    assert request["body"] == {"order": ORDER}
    assert request["path"] == "/hooks/orders?key=abc"


def test_http_sink_retries_503_with_same_key(tmp_path: Path, receiver: Receiver) -> None:
    """Two 503s are retried with backoff and the same key; the third attempt delivers."""
    receiver.statuses = [503, 503, 200]
    sink, waits = _sink(tmp_path, receiver.url, backoff_s=0.5, max_backoff_s=8)

    results = sink.deliver([_delivery()])

    keys = {request["headers"]["Idempotency-Key"] for request in receiver.requests}
    assert results[0].delivered
    assert len(receiver.requests) == 3
    assert keys == {"ord_00000001:2026-12-04T19:57:07.000001Z"}
    assert waits == [0.5, 1.0]


def test_http_sink_gives_up_after_max_attempts(tmp_path: Path, receiver: Receiver) -> None:
    """Endless 503s fail the order after max_attempts; the error omits the query string."""
    receiver.statuses = [503] * 5
    sink, waits = _sink(tmp_path, receiver.url, max_attempts=3, backoff_s=1, max_backoff_s=1.5)

    results = sink.deliver([_delivery()])

    assert not results[0].delivered
    assert len(receiver.requests) == 3
    assert waits == [1.0, 1.5]
    assert results[0].error is not None
    assert "status 503" in results[0].error
    assert "key=abc" not in results[0].error


@pytest.mark.parametrize("status", [400, 404, 422], ids=["bad-request", "not-found", "invalid"])
def test_http_sink_4xx_fails_order_only(tmp_path: Path, receiver: Receiver, status: int) -> None:
    """A 4xx fails that order at once, unretried; the next order is still sent."""
    receiver.statuses = [status, 201]
    sink, waits = _sink(tmp_path, receiver.url)

    results = sink.deliver([_delivery("ord_1"), _delivery("ord_2")])

    assert [result.delivered for result in results] == [False, True]
    assert f"status {status}" in (results[0].error or "")
    assert len(receiver.requests) == 2
    assert waits == []


def test_http_sink_prescriptions_when_enabled(tmp_path: Path, receiver: Receiver) -> None:
    """With prescriptions = true the body carries them."""
    sink, _ = _sink(tmp_path, receiver.url, prescriptions=True)

    sink.deliver([_delivery()])

    assert receiver.requests[0]["body"]["prescriptions"] == RX
    assert sink.wants_prescriptions


def test_http_sink_unreachable_fails_the_rest(tmp_path: Path) -> None:
    """With no response, the first order fails after retries and the rest are not sent."""
    sink, waits = _sink(tmp_path, "http://127.0.0.1:9/orders", max_attempts=2, timeout_s=2)

    results = sink.deliver([_delivery("ord_1"), _delivery("ord_2")])

    assert [result.delivered for result in results] == [False, False]
    assert "no response" in (results[0].error or "")
    assert (results[1].error or "").startswith("not sent")
    assert len(waits) == 1


def test_http_sink_auth_header_from_env(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auth header's value comes from the named variable and stays out of describe()."""
    monkeypatch.setenv("ORDERS_HOOK_TOKEN", "Bearer s3cr3t-value")
    sink, _ = _sink(tmp_path, receiver.url, auth_env="ORDERS_HOOK_TOKEN")

    sink.deliver([_delivery()])

    assert receiver.requests[0]["headers"]["Authorization"] == "Bearer s3cr3t-value"
    assert "s3cr3t" not in sink.describe()


def test_http_sink_auth_header_from_file(tmp_path: Path, receiver: Receiver) -> None:
    """auth_file is read relative to the config folder and trimmed."""
    (tmp_path / "hook.secret").write_text("token-from-file\n", encoding="utf-8")
    sink, _ = _sink(tmp_path, receiver.url, auth_header="X-Api-Key", auth_file="hook.secret")

    sink.deliver([_delivery()])

    assert receiver.requests[0]["headers"]["X-Api-Key"] == "token-from-file"


def test_http_sink_missing_env_is_config_error(tmp_path: Path) -> None:
    """An unset auth_env variable is a configuration error that names it."""
    with pytest.raises(ConfigError, match="NO_SUCH_VARIABLE_FOR_TEST"):
        _sink(tmp_path, "http://127.0.0.1:9/", auth_env="NO_SUCH_VARIABLE_FOR_TEST")


@pytest.mark.parametrize(
    "options",
    [
        {"url": "ftp://127.0.0.1/orders"},
        {"url": "http://127.0.0.1/", "auth_env": "A", "auth_file": "b"},
        {"url": "http://127.0.0.1/", "max_attempts": 0},
    ],
    ids=["not-http", "two-secret-sources", "no-attempts"],
)
def test_http_sink_invalid_options(options: dict[str, Any]) -> None:
    """Invalid options are rejected by the options model."""
    with pytest.raises(ValidationError):
        HttpSinkOptions.model_validate(options)
