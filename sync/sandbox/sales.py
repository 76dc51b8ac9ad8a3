"""Simulated kiosk sales: invented customers buy in-stock frames, with prescriptions.

Every name, email and prescription here is invented by a seeded random generator;
none belongs to a real person.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sync.sandbox.catalogue import FrameCatalogue, frame_id, frame_number
from sync.sandbox.orders import Order, OrderBook, OrderLine
from sync.sandbox.webhooks import WebhookHub

logger = logging.getLogger("sync.sandbox.sales")

FIRST_NAMES = ("Avery", "Jordan", "Riley", "Morgan", "Casey", "Quinn", "Harper", "Rowan")
LAST_NAMES = ("Lindqvist", "Okafor", "Moreau", "Tanaka", "Castillo", "Novak", "Brennan")


def invent_customer(rng: random.Random) -> tuple[str, str]:
    """Return an invented `(name, email)` on the reserved `example.com` domain."""
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    email = f"{first}.{last}{rng.randint(1, 999)}@example.com".lower()
    return f"{first} {last}", email


def _dioptre(rng: random.Random, low: float, high: float) -> str:
    quarters = rng.randint(round(low * 4), round(high * 4))
    return f"{Decimal(quarters) / 4:+.2f}"


def _eye(rng: random.Random, add: str | None) -> dict[str, Any]:
    astigmatic = rng.random() < 0.5
    return {
        "sphere": _dioptre(rng, -6.0, 4.0),
        "cylinder": _dioptre(rng, -2.5, -0.25) if astigmatic else None,
        "axis": rng.randint(1, 180) if astigmatic else None,
        "add": add,
    }


def invent_prescription(rng: random.Random) -> dict[str, Any]:
    """Return invented prescription values in the contract's shape, without id and order."""
    add = _dioptre(rng, 0.75, 3.0) if rng.random() < 0.3 else None
    half_pd = Decimal(rng.randint(56, 70)) / 2
    return {
        "od": _eye(rng, add),
        "os": _eye(rng, add),
        "pd": {"binocular": f"{half_pd * 2:.1f}", "od": f"{half_pd:.1f}", "os": f"{half_pd:.1f}"},
        "segment_height": {"od": None, "os": None},
    }


class SaleSimulator:
    """Creates kiosk orders that take stock from the catalogue and fire webhooks.

    Args:
        catalogue: frames to sell from.
        orders: where the orders and prescriptions go.
        hub: receives `order.created` and `inventory.updated` events.
        seed: seed of the generator that picks frames and invents customers.
    """

    def __init__(
        self, catalogue: FrameCatalogue, orders: OrderBook, hub: WebhookHub, seed: int
    ) -> None:
        self._catalogue = catalogue
        self._orders = orders
        self._hub = hub
        self._seed = seed
        self._rng = random.Random(seed)  # noqa: S311 - repeatable test data, not security

    def reset(self) -> None:
        """Restart the generator, so the same calls invent the same sales again."""
        self._rng = random.Random(self._seed)  # noqa: S311 - repeatable test data, not security

    def sell(
        self, count: int = 1, *, frame_ids: list[str] | None = None, prescription: bool = True
    ) -> list[Order]:
        """Create count sales of one frame each, or one sale per id in frame_ids.

        Each sale takes one unit of stock. Frames are drawn at random among those in
        stock unless frame_ids names them.

        Raises:
            LookupError: a named frame does not exist or is out of stock, or no frame
                is in stock.
        """
        orders = []
        for number in self._pick(count, frame_ids):
            orders.append(self._sell_one(number, prescription))
        return orders

    def _pick(self, count: int, frame_ids: list[str] | None) -> list[int]:
        if frame_ids is not None:
            numbers = [frame_number(item) for item in frame_ids]
            missing = [item for item, n in zip(frame_ids, numbers, strict=True) if n is None]
            if missing:
                raise LookupError(f"frames {missing} do not exist")
            return [n for n in numbers if n is not None]
        return [0] * count

    def _sell_one(self, number: int, prescription: bool) -> Order:
        with self._catalogue.lock:
            if number == 0:
                start = self._rng.randint(1, max(len(self._catalogue), 1))
                found = self._catalogue.first_in_stock_from(start)
                if found is None:
                    raise LookupError("no frame is in stock")
                number = found
            frame = self._catalogue.get(number)
            if frame is None or frame["quantity"] < 1:
                raise LookupError(f"frame {frame_id(number)} does not exist or is out of stock")
            self._catalogue.update(number, {"quantity": frame["quantity"] - 1})

        name, email = invent_customer(self._rng)
        cents = int(Decimal(frame["price"] or "0") * 100)
        line = OrderLine(frame["id"], frame["sku"], frame["upc"], 1, cents)
        rx = invent_prescription(self._rng) if prescription else None
        order = self._orders.add([line], customer_name=name, customer_email=email, prescription=rx)

        self._hub.emit("order.created", {"order_id": order.id})
        self._hub.emit("inventory.updated", {"frame_ids": [frame["id"]]})
        return order


class SalesGenerator:
    """Creates one simulated sale every ``60 / orders_per_minute`` seconds on a background thread.

    The sales come from the store's seeded ``SaleSimulator`` at fixed intervals,
    so a sandbox started with the same seed makes the same sales in the same
    order. A sale that finds nothing in stock is logged and skipped.

    Args:
        sell: creates one sale, normally ``SandboxStore.create_sales``.
        orders_per_minute: the rate; more than 0.
    """

    def __init__(self, sell: Callable[[], object], orders_per_minute: float) -> None:
        if orders_per_minute <= 0:
            raise ValueError(f"orders_per_minute must be more than 0, got {orders_per_minute}")
        self.interval_s = 60.0 / orders_per_minute
        self.created = 0
        self._sell = sell
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the generator thread is running."""
        return self._thread is not None

    def start(self) -> None:
        """Start creating sales.

        Raises:
            RuntimeError: the generator is already running.
        """
        if self._thread is not None:
            raise RuntimeError("the sales generator is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sandbox-sales", daemon=True)
        self._thread.start()
        logger.info("sandbox.sales.started interval_s=%.3f", self.interval_s)

    def stop(self) -> None:
        """Stop creating sales and wait for the thread.

        Raises:
            RuntimeError: the generator is not running.
        """
        if self._thread is None:
            raise RuntimeError("the sales generator is not running")
        self._stop.set()
        self._thread.join()
        self._thread = None
        logger.info("sandbox.sales.stopped created=%d", self.created)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._sell()
            except LookupError as exc:
                logger.warning("sandbox.sales.skipped reason=%s", exc)
                continue
            self.created += 1
