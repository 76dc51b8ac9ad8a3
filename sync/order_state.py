"""The order side of the state database: one row per kiosk order a job has pulled.

``delivered_orders`` is the de-duplication key of the order pull, the source
of the no-oversell netting and the last known Eyekiosk status of each order.
It holds ids, timestamps, statuses, counts and the order's lines as
``(frame_id, quantity)`` pairs. Names, emails, prices and prescription values
never reach it.

Timestamps are stored as fixed-width ISO 8601 text with six fraction digits
(``2026-12-04T19:57:07.123456Z``), because the de-duplication compares them
for equality and some databases drop microseconds from their datetime types.
The text sorts in time order.

The table is declared on ``sync.state.Base``, so ``StateStore.open`` creates it
once this module is imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Boolean, Integer, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from sync.errors import StateError
from sync.models import Order
from sync.state import Base, StateStore

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Keeps one IN (...) list well under SQLite's bound-parameter limit.
ID_CHUNK = 500


class DeliveredOrder(Base):
    """One pulled order of one job.

    ``updated_at`` and ``status`` follow the newest version seen on Eyekiosk (or
    sent to it by a status update); ``delivered_updated_at`` is the version the
    sink confirmed, NULL while no version was delivered.
    """

    __tablename__ = "delivered_orders"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[str] = mapped_column(String(32), index=True)
    updated_at: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    units: Mapped[int] = mapped_column(Integer, default=0)
    lines: Mapped[str] = mapped_column(Text, default="[]")
    has_prescription: Mapped[bool] = mapped_column(Boolean, default=False)
    delivered_updated_at: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[str | None] = mapped_column(String(32))


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """A ``delivered_orders`` row as plain values.

    Attributes:
        lines: ``(frame_id, quantity)`` per order line, in order.
    """

    job: str
    order_id: str
    created_at: str
    updated_at: str
    status: str | None
    item_count: int
    units: int
    lines: tuple[tuple[str, int], ...]
    has_prescription: bool
    delivered_updated_at: str | None
    delivered_at: str | None

    @property
    def delivered(self) -> bool:
        """Whether some version of the order reached the sink."""
        return self.delivered_updated_at is not None


def format_stamp(value: datetime) -> str:
    """Format an aware datetime as the table's fixed-width UTC text."""
    return value.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """Parse the table's timestamp text back into an aware UTC datetime."""
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


def _record(row: DeliveredOrder) -> OrderRecord:
    return OrderRecord(
        job=row.job,
        order_id=row.order_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        status=row.status,
        item_count=row.item_count,
        units=row.units,
        lines=tuple((str(frame), int(quantity)) for frame, quantity in json.loads(row.lines)),
        has_prescription=bool(row.has_prescription),
        delivered_updated_at=row.delivered_updated_at,
        delivered_at=row.delivered_at,
    )


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), ID_CHUNK):
        yield items[start : start + ID_CHUNK]


def load_orders(store: StateStore, job: str, order_ids: Iterable[str]) -> dict[str, OrderRecord]:
    """Return the stored rows of these orders of ``job``, keyed by order id."""
    wanted = sorted(set(order_ids))
    found: dict[str, OrderRecord] = {}
    with store.session() as session:
        for chunk in _chunks(wanted):
            rows = session.scalars(
                select(DeliveredOrder).where(
                    DeliveredOrder.job == job, DeliveredOrder.order_id.in_(chunk)
                )
            ).all()
            found.update((row.order_id, _record(row)) for row in rows)
    return found


def record_seen(store: StateStore, job: str, orders: Sequence[Order]) -> None:
    """Store the newest listed version of each order, leaving its delivery columns alone.

    A listed version older than the stored one (a stale page) changes nothing.
    """
    by_id = {order.id: order for order in orders}
    with store.session() as session:
        for chunk in _chunks(sorted(by_id)):
            existing = {
                row.order_id: row
                for row in session.scalars(
                    select(DeliveredOrder).where(
                        DeliveredOrder.job == job, DeliveredOrder.order_id.in_(chunk)
                    )
                ).all()
            }
            for order_id in chunk:
                order = by_id[order_id]
                stamp = format_stamp(order.updated_at)
                row = existing.get(order_id)
                if row is None:
                    row = DeliveredOrder(job=job, order_id=order_id)
                    session.add(row)
                elif row.updated_at > stamp:
                    continue
                lines = [[item.frame_id, item.quantity] for item in order.items]
                row.created_at = format_stamp(order.created_at)
                row.updated_at = stamp
                row.status = order.status
                row.item_count = len(order.items)
                row.units = sum(item.quantity for item in order.items)
                row.lines = json.dumps(lines)
                row.has_prescription = order.has_prescription


def mark_delivered(
    store: StateStore, job: str, versions: Sequence[tuple[str, datetime]], *, at: datetime
) -> None:
    """Record that the sink confirmed these ``(order id, updated_at)`` versions.

    Raises:
        StateError: when an order was never recorded by ``record_seen``.
    """
    delivered_at = format_stamp(at)
    with store.session() as session:
        for order_id, updated_at in versions:
            changed = session.execute(
                update(DeliveredOrder)
                .where(DeliveredOrder.job == job, DeliveredOrder.order_id == order_id)
                .values(delivered_updated_at=format_stamp(updated_at), delivered_at=delivered_at)
            ).rowcount  # type: ignore[attr-defined]
            if changed != 1:
                raise StateError(
                    f"order {order_id} of job {job} matched {changed} rows, expected 1"
                )


def set_known_status(
    store: StateStore, order_id: str, status: str | None, *, job: str | None = None
) -> int:
    """Store the order's Eyekiosk status (None when unknown) for one job or all; return rows."""
    statement = update(DeliveredOrder).where(DeliveredOrder.order_id == order_id)
    if job is not None:
        statement = statement.where(DeliveredOrder.job == job)
    with store.session() as session:
        result = session.execute(statement.values(status=status))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def list_orders(store: StateStore, job: str | None = None, *, limit: int = 50) -> list[OrderRecord]:
    """Return the most recently changed pulled orders, newest first."""
    statement = (
        select(DeliveredOrder)
        .order_by(DeliveredOrder.updated_at.desc(), DeliveredOrder.order_id.desc())
        .limit(limit)
    )
    if job is not None:
        statement = statement.where(DeliveredOrder.job == job)
    with store.session() as session:
        return [_record(row) for row in session.scalars(statement).all()]


def sold_lines(store: StateStore, job: str) -> pd.DataFrame:
    """Return one row per order line of the job's orders that are not cancelled.

    Columns: ``order_id``, ``created_at`` (aware datetime), ``delivered``
    (bool), ``delivered_at`` (aware datetime of the last delivery, NaT before
    the first), ``frame_id`` and ``quantity`` (Int64).
    """
    statement = select(
        DeliveredOrder.order_id,
        DeliveredOrder.created_at,
        DeliveredOrder.delivered_updated_at,
        DeliveredOrder.delivered_at,
        DeliveredOrder.lines,
    ).where(
        DeliveredOrder.job == job,
        # An unknown status (NULL) still nets: only a cancelled sale gave its stock back.
        or_(DeliveredOrder.status.is_(None), DeliveredOrder.status != "cancelled"),
    )
    records = []
    with store.session() as session:
        for order_id, created_at, delivered_updated_at, delivered_at, lines in session.execute(
            statement
        ):
            for frame_id, quantity in json.loads(lines):
                records.append(
                    (order_id, parse_stamp(created_at), delivered_updated_at is not None,
                     parse_stamp(delivered_at) if delivered_at else None, frame_id, quantity)
                )  # fmt: skip
    frame = pd.DataFrame.from_records(
        records,
        columns=["order_id", "created_at", "delivered", "delivered_at", "frame_id", "quantity"],
    )
    return frame.astype(
        {
            "order_id": "string",
            "created_at": "datetime64[us, UTC]",
            "delivered": "bool",
            "delivered_at": "datetime64[us, UTC]",
            "frame_id": "string",
            "quantity": "Int64",
        }
    )


__all__ = [
    "DeliveredOrder",
    "OrderRecord",
    "format_stamp",
    "list_orders",
    "load_orders",
    "mark_delivered",
    "parse_stamp",
    "record_seen",
    "set_known_status",
    "sold_lines",
]
