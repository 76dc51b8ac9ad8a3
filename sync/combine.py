"""Merge the rows of a job's sources into one row per key, by the job's combine rules.

A practice may sell its own stock plus what a supplier can deliver: quantity is
then the sum of both, capped at a maximum, and the price comes from the first
source that has one. The rules live in ``[jobs.combine]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from adapters.base import KEY, PRICE_CENTS, QUANTITY
from sync.config import CombineSettings

ORDER = "_source_order"


def combine_rows(frames: Sequence[pd.DataFrame], rules: CombineSettings) -> pd.DataFrame:
    """Combine normalised source rows into one row per key.

    Args:
        frames: each source's normalised rows (key, quantity, price_cents), in
            the job's source order; keys are unique within each frame.
        rules: how quantities and prices of one key combine.

    Returns:
        Normalised rows with unique keys. Keys keep the order of their first appearance.
    """
    if len(frames) == 1:
        return _cap(frames[0].reset_index(drop=True), rules.max_quantity)

    stacked = pd.concat(
        [frame.assign(**{ORDER: number}) for number, frame in enumerate(frames)],
        ignore_index=True,
    )
    grouped = stacked.sort_values(ORDER, kind="stable").groupby(KEY, sort=False)

    quantity = {
        "sum": grouped[QUANTITY].sum,
        "max": grouped[QUANTITY].max,
        "min": grouped[QUANTITY].min,
        "first": grouped[QUANTITY].first,
    }[rules.quantity]()
    # first() and the reductions skip missing prices, so a source without a price defers.
    price = {
        "first": grouped[PRICE_CENTS].first,
        "min": grouped[PRICE_CENTS].min,
        "max": grouped[PRICE_CENTS].max,
    }[rules.price]()

    combined = pd.DataFrame(
        {
            KEY: quantity.index.astype("string"),
            QUANTITY: quantity.to_numpy(),
            PRICE_CENTS: price.reindex(quantity.index).to_numpy(),
        }
    ).astype({QUANTITY: "Int64", PRICE_CENTS: "Int64"})
    return _cap(combined, rules.max_quantity)


def _cap(rows: pd.DataFrame, max_quantity: int | None) -> pd.DataFrame:
    if max_quantity is None:
        return rows
    return rows.assign(**{QUANTITY: rows[QUANTITY].clip(upper=max_quantity)})


__all__ = ["combine_rows"]
