"""No oversell: hold back kiosk sales that the practice's stock export does not count yet.

A kiosk sale lowers the frame's quantity on Eyekiosk at once, but the
practice's export counts it only after its system books the order. A push
from the stale export in between would put the sold unit back on sale. So,
before the diff, the engine subtracts each frame's unsettled units from the
export's quantity (floored at 0).

The rule. An order line counts as unsettled when its order is in
``delivered_orders`` for the job, its last known status is not ``cancelled``,
it is undelivered or was last delivered less than ``MAX_NETTING_AGE`` (7 days)
before ``now``, and:

* the sink can tell which orders are booked (``OrderSink.booked_orders``
  returned a set): the order is not in that set;
* the sink cannot tell (None): the order was not delivered yet, or it was
  last delivered less than ``settle_minutes`` before ``now``. The window runs
  from delivery, not from the sale, because the practice's system cannot book
  an order before the sink hands it over.

An order that failed to reach the sink is counted too, because the
practice's system cannot have booked an order it never received. A booked
order stops netting at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from adapters.base import QUANTITY
from sync.order_state import sold_lines
from sync.state import StateStore

FRAME_ID = "frame_id"
# No kiosk sale nets for longer than this, booked or not.
MAX_NETTING_AGE = timedelta(days=7)
NETTED = "netted"
SOURCE_QUANTITY = "source_quantity"


def unsettled_sales(
    store: StateStore,
    job_name: str,
    *,
    now: datetime,
    settle_minutes: float,
    booked: set[str] | None,
) -> pd.Series:
    """Return the kiosk units per frame that the practice's export may not count yet.

    See the module docstring for the rule.

    Args:
        store: the open state store.
        job_name: the job whose pulled orders count.
        now: the aware current time.
        settle_minutes: how long an order nets when the sink cannot tell whether
            it was booked.
        booked: ids of orders that the practice's system booked, or None when the
            sink cannot tell.

    Returns:
        Units to subtract, indexed by frame id (name ``frame_id``), Int64, only
        frames with more than 0, sorted by frame id.
    """
    lines = _recent(sold_lines(store, job_name), now)
    if booked is None:
        # The window runs from delivery: the practice's system cannot book an
        # order before the sink hands it over, however old the sale is.
        window_start = now - timedelta(minutes=settle_minutes)
        unsettled = lines.loc[(~lines["delivered"]) | (lines["delivered_at"] > window_start)]
    else:
        unsettled = lines.loc[~lines["order_id"].isin(list(booked))]

    netted = unsettled.groupby(FRAME_ID)[QUANTITY].sum().astype("Int64")
    netted = netted.loc[netted > 0].sort_index()
    netted.index = netted.index.astype("string")
    netted.index.name = FRAME_ID
    netted.name = NETTED
    return netted


def netting_candidates(store: StateStore, job_name: str, *, now: datetime) -> list[str]:
    """Return the order ids to ask ``OrderSink.booked_orders`` about: every order that may net."""
    lines = _recent(sold_lines(store, job_name), now)
    return sorted(set(lines["order_id"].dropna()))


def _recent(lines: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Keep undelivered orders, and delivered ones last delivered within ``MAX_NETTING_AGE``.

    An order the practice's system never reports as booked (purged, archived,
    or a sink that lost track of it) would otherwise hold stock back forever.
    The age counts from delivery, because nothing can book an order before it.
    """
    return lines.loc[~lines["delivered"] | (lines["delivered_at"] > now - MAX_NETTING_AGE)]


__all__ = [
    "netting_candidates",
    "unsettled_sales",
]
