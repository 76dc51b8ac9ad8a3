"""Unit tests of the no-oversell netting rule on a real SQLite state database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.models import Order
from sync.netting import netting_candidates, unsettled_sales
from sync.order_state import mark_delivered, record_seen, set_known_status
from sync.state import StateStore

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SETTLE = 60.0


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        yield store


def _order(
    order_id: str, minutes_ago: float, lines: list[tuple[str, int]], status: str = "pending"
) -> Order:
    created = NOW - timedelta(minutes=minutes_ago)
    return Order.model_validate(
        {
            "id": order_id,
            "status": status,
            "created_at": created.isoformat(),
            "updated_at": created.isoformat(),
            "items": [{"frame_id": frame, "quantity": quantity} for frame, quantity in lines],
        }
    )


def _pull(
    state: StateStore,
    *orders: Order,
    delivered: bool = True,
    job: str = "shop",
    delivered_minutes_ago: float = 0,
) -> None:
    record_seen(state, job, list(orders))
    if delivered:
        at = NOW - timedelta(minutes=delivered_minutes_ago)
        mark_delivered(state, job, [(order.id, order.updated_at) for order in orders], at=at)


def _netted(state: StateStore, booked: set[str] | None = None, job: str = "shop") -> dict[str, int]:
    series = unsettled_sales(state, job, now=NOW, settle_minutes=SETTLE, booked=booked)
    return {str(frame): int(units) for frame, units in series.items()}


def test_netting_recent_sales_summed_per_frame(state: StateStore) -> None:
    """Recent delivered sales are summed per frame when the sink cannot tell what is booked."""
    _pull(state, _order("o1", 5, [("frm_1", 1), ("frm_2", 2)]), _order("o2", 10, [("frm_1", 3)]))

    assert _netted(state) == {"frm_1": 4, "frm_2": 2}


def test_netting_window_expires_delivered_sales(state: StateStore) -> None:
    """A sale delivered longer than settle_minutes ago no longer nets; a later one still does."""
    _pull(state, _order("old", SETTLE + 1, [("frm_1", 1)]), delivered_minutes_ago=SETTLE + 1)
    _pull(state, _order("new", SETTLE - 1, [("frm_2", 1)]), delivered_minutes_ago=SETTLE - 1)

    assert _netted(state) == {"frm_2": 1}


def test_netting_window_starts_at_delivery(state: StateStore) -> None:
    """An old sale delivered late, after the sink or the daemon was down, still nets."""
    _pull(state, _order("late", SETTLE * 2, [("frm_1", 1)]), delivered_minutes_ago=1)

    assert _netted(state) == {"frm_1": 1}


def test_netting_stops_after_max_age(state: StateStore) -> None:
    """No delivered sale nets for more than seven days after delivery, booked or not."""
    _pull(state, _order("stale", 9 * 24 * 60, [("frm_1", 1)]), delivered_minutes_ago=8 * 24 * 60)
    _pull(state, _order("late", 9 * 24 * 60, [("frm_2", 1)]), delivered_minutes_ago=1)

    assert _netted(state) == {"frm_2": 1}
    assert _netted(state, booked=set()) == {"frm_2": 1}
    assert netting_candidates(state, "shop", now=NOW) == ["late"]


def test_netting_cancelled_orders_never_net(state: StateStore) -> None:
    """A cancelled order gave its stock back, so it nets nothing, booked or not."""
    _pull(state, _order("o1", 1, [("frm_1", 1)], status="cancelled"))

    assert _netted(state) == {}
    assert _netted(state, booked=set()) == {}


def test_netting_status_cancelled_later_stops_netting(state: StateStore) -> None:
    """An order cancelled through a status update stops netting."""
    _pull(state, _order("o1", 1, [("frm_1", 1)]))
    set_known_status(state, "o1", "cancelled", job="shop")

    assert _netted(state) == {}


def test_netting_undelivered_orders_net_past_window(state: StateStore) -> None:
    """An order the sink never confirmed nets even after the window: nothing can have booked it."""
    _pull(state, _order("o1", SETTLE * 10, [("frm_1", 2)]), delivered=False)

    assert _netted(state) == {"frm_1": 2}


def test_netting_booked_orders_stop_at_once(state: StateStore) -> None:
    """When the sink can tell, a booked order stops netting even inside the window."""
    _pull(state, _order("o1", 1, [("frm_1", 1)]), _order("o2", 1, [("frm_1", 1)]))

    assert _netted(state, booked={"o1"}) == {"frm_1": 1}


def test_netting_unbooked_orders_ignore_window(state: StateStore) -> None:
    """When the sink can tell, an unbooked order nets past the settle window."""
    _pull(state, _order("o1", SETTLE * 100, [("frm_1", 1)]), delivered_minutes_ago=SETTLE * 100)

    assert _netted(state) == {}
    assert _netted(state, booked=set()) == {"frm_1": 1}


def test_netting_other_jobs_ignored(state: StateStore) -> None:
    """Only the named job's orders count."""
    _pull(state, _order("o1", 1, [("frm_1", 1)]), job="other")

    assert _netted(state) == {}
    assert netting_candidates(state, "other", now=NOW) == ["o1"]


def test_netting_series_shape(state: StateStore) -> None:
    """The result is an Int64 series indexed by frame_id, sorted, with only positive units."""
    _pull(state, _order("o1", 1, [("frm_2", 1), ("frm_1", 1)]))

    series = unsettled_sales(state, "shop", now=NOW, settle_minutes=SETTLE, booked=None)

    assert series.index.name == "frame_id"
    assert list(series.index) == ["frm_1", "frm_2"]
    assert str(series.dtype) == "Int64"


def test_netting_empty_state(state: StateStore) -> None:
    """No orders give an empty series."""
    series = unsettled_sales(state, "shop", now=NOW, settle_minutes=SETTLE, booked=None)

    assert series.empty
    assert series.index.name == "frame_id"
