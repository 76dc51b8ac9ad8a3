"""Orders and prescriptions of the sandbox, with the status transitions of the contract."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sync.models import ALLOWED_TRANSITIONS, ORDER_STATUSES
from sync.sandbox.catalogue import format_cents
from sync.sandbox.clock import MonotonicClock, format_us

logger = logging.getLogger("sync.sandbox.orders")


class UnknownStatus(ValueError):
    """The requested order status is not one of the contract's statuses."""


class InvalidTransition(ValueError):
    """The order's current status does not allow the requested status."""


@dataclass
class OrderLine:
    """One frame on an order."""

    frame_id: str
    sku: str
    upc: str | None
    quantity: int
    unit_price_cents: int


@dataclass
class Order:
    """An order as the sandbox stores it; `to_wire` builds the contract's shape."""

    number: int
    status: str
    created_at_us: int
    updated_at_us: int
    customer_name: str = field(repr=False)
    customer_email: str = field(repr=False)
    lines: list[OrderLine]
    has_prescription: bool
    payment_method: str = "card"
    payment_status: str = "paid"
    currency: str = "USD"

    @property
    def id(self) -> str:
        """API id of the order."""
        return f"ord_{self.number:08d}"

    @property
    def total_cents(self) -> int:
        """Sum of quantity times unit price over the lines."""
        return sum(line.quantity * line.unit_price_cents for line in self.lines)

    def to_wire(self, *, with_payment: bool) -> dict[str, Any]:
        """Build the wire form; the list omits payment, the single-order view includes it."""
        wire: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created_at": format_us(self.created_at_us),
            "updated_at": format_us(self.updated_at_us),
            "currency": self.currency,
            "total": format_cents(self.total_cents),
            "customer": {"name": self.customer_name, "email": self.customer_email},
            "items": [
                {
                    "frame_id": line.frame_id,
                    "sku": line.sku,
                    "upc": line.upc,
                    "quantity": line.quantity,
                    "unit_price": format_cents(line.unit_price_cents),
                }
                for line in self.lines
            ],
            "has_prescription": self.has_prescription,
        }
        if with_payment:
            wire["payment"] = {
                "method": self.payment_method,
                "status": self.payment_status,
                "amount": format_cents(self.total_cents),
            }
        return wire


@dataclass
class Prescription:
    """A prescription attached to an order. Values are decimal strings, as on the wire."""

    number: int
    order_id: str
    created_at_us: int
    values: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        """API id of the prescription."""
        return f"rx_{self.number:08d}"

    def to_wire(self) -> dict[str, Any]:
        """Build the wire form."""
        return {
            "id": self.id,
            "order_id": self.order_id,
            "created_at": format_us(self.created_at_us),
            **self.values,
        }


class OrderBook:
    """Orders and prescriptions in memory, guarded by one lock.

    Args:
        clock: source of `created_at` and `updated_at`.
    """

    def __init__(self, clock: MonotonicClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._orders: dict[str, Order] = {}
        self._prescriptions: list[Prescription] = []

    def reset(self) -> None:
        """Drop every order and prescription."""
        with self._lock:
            self._orders.clear()
            self._prescriptions.clear()

    def add(
        self,
        lines: list[OrderLine],
        *,
        customer_name: str,
        customer_email: str,
        prescription: dict[str, Any] | None,
    ) -> Order:
        """Create a pending, paid order, with a prescription when one is given."""
        now_us = self._clock.now_us()
        with self._lock:
            order = Order(
                number=len(self._orders) + 1,
                status="pending",
                created_at_us=now_us,
                updated_at_us=now_us,
                customer_name=customer_name,
                customer_email=customer_email,
                lines=lines,
                has_prescription=prescription is not None,
            )
            self._orders[order.id] = order
            if prescription is not None:
                number = len(self._prescriptions) + 1
                self._prescriptions.append(Prescription(number, order.id, now_us, prescription))
        logger.info("sandbox.order.created order_id=%s lines=%d", order.id, len(lines))
        return order

    def get(self, order_id: str) -> Order | None:
        """Return the order, or None when it does not exist."""
        with self._lock:
            return self._orders.get(order_id)

    def page(
        self, *, status: str | None, since_us: int | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Return one page of orders in `(updated_at, id)` order, without payment, and the total."""
        with self._lock:
            matches = [
                order
                for order in self._orders.values()
                if (status is None or order.status == status)
                and (since_us is None or order.updated_at_us >= since_us)
            ]
            matches.sort(key=lambda order: (order.updated_at_us, order.number))
            chosen = matches[offset : offset + limit]
            return [order.to_wire(with_payment=False) for order in chosen], len(matches)

    def change_status(self, order_id: str, status: str) -> tuple[Order, str] | None:
        """Move an order to status; setting the current status changes nothing.

        Returns:
            The order and its previous status, or None when the order does not exist.

        Raises:
            UnknownStatus: status is not a contract status.
            InvalidTransition: the transition table does not allow the change.
        """
        if status not in ORDER_STATUSES:
            raise UnknownStatus(f"status {status!r} is not one of {list(ORDER_STATUSES)}")
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return None
            previous = order.status
            if status == previous:
                return order, previous
            if status not in ALLOWED_TRANSITIONS[previous]:
                allowed = sorted(ALLOWED_TRANSITIONS[previous]) or "no other status"
                raise InvalidTransition(
                    f"order {order_id} cannot go from {previous} to {status}; allowed: {allowed}"
                )
            order.status = status
            order.updated_at_us = self._clock.now_us()
        logger.info(
            "sandbox.order.status_changed order_id=%s from=%s to=%s", order_id, previous, status
        )
        return order, previous

    def prescriptions_page(
        self, *, order_id: str | None, since_us: int | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Return one page of prescriptions in `(created_at, id)` order and the total."""
        with self._lock:
            matches = [
                item
                for item in self._prescriptions
                if (order_id is None or item.order_id == order_id)
                and (since_us is None or item.created_at_us >= since_us)
            ]
            matches.sort(key=lambda item: (item.created_at_us, item.number))
            chosen = matches[offset : offset + limit]
            return [item.to_wire() for item in chosen], len(matches)
