"""The sandbox's background sales generator behind `sandbox --orders-per-minute`."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from sync.sandbox import SandboxServer, SandboxStore
from sync.sandbox.cli import add_arguments, run_from_args

RATE = 3000.0  # one sale every 20 ms


def _orders(store: SandboxStore) -> list[tuple[str, str, str]]:
    data, _total = store.orders.page(status=None, since_us=None, limit=500, offset=0)
    return [(item["id"], item["items"][0]["frame_id"], item["customer"]["name"]) for item in data]


def _wait_for(store: SandboxStore, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_orders(store)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} sales after {timeout} s"
        time.sleep(0.01)


def test_sandbox_generator_creates_sales_until_stopped(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    """Sales appear at the rate while the server runs and stop when it stops."""
    server = make_sandbox(frames=50, orders_per_minute=RATE)
    store = server.store
    assert store is not None

    _wait_for(store, 3)
    server.stop()
    stopped = len(_orders(store))
    time.sleep(0.1)

    assert len(_orders(store)) == stopped
    assert store.sales_generator is not None
    assert not store.sales_generator.running


def test_sandbox_generator_repeats_with_seed(make_sandbox: Callable[..., SandboxServer]) -> None:
    """Two sandboxes with the same seed make the same first sales: frames and invented names."""
    first = make_sandbox(frames=50, seed=7, orders_per_minute=RATE)
    second = make_sandbox(frames=50, seed=7, orders_per_minute=RATE)
    assert first.store is not None and second.store is not None

    _wait_for(first.store, 3)
    _wait_for(second.store, 3)

    assert _orders(first.store)[:3] == _orders(second.store)[:3]


def test_sandbox_generator_off_by_default(sandbox: SandboxServer) -> None:
    """Without orders_per_minute the sandbox makes no sales on its own."""
    assert sandbox.store is not None
    assert sandbox.store.sales_generator is None


def test_sandbox_cli_orders_per_minute_option() -> None:
    """--orders-per-minute is parsed as a rate; a negative rate is rejected with exit 2."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    args = parser.parse_args(["--orders-per-minute", "12"])
    negative = parser.parse_args(["--orders-per-minute", "-1", "--port", "0"])

    assert args.orders_per_minute == 12.0
    assert parser.parse_args([]).orders_per_minute == 0.0
    assert run_from_args(negative) == 2
