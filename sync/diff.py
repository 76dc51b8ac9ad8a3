"""Compare source stock with the frame mirror and return the minimal set of changes.

Both sides arrive as DataFrames. Keys are matched with one Arrow hash lookup
and the values compared as NumPy arrays, so a million rows take a fraction of
a second. Only frames whose quantity or price differs
come out, and only the fields that differ are set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from adapters.base import KEY, PRICE_CENTS, QUANTITY

FRAME_ID = "frame_id"
OLD_QUANTITY = "old_quantity"
OLD_PRICE_CENTS = "old_price_cents"
MatchOn = Literal["sku", "upc", "composite"]
Missing = Literal["ignore", "zero"]

MIRROR_KEY_COLUMN: dict[str, str] = {"sku": "sku", "upc": "gtin14", "composite": "composite"}


@dataclass(slots=True)
class DiffResult:
    """The outcome of one comparison.

    Attributes:
        changes: one row per frame to update, columns frame_id, key, quantity and
            price_cents (Int64, missing where that field stays as it is), plus
            old_quantity and old_price_cents for the report.
        unknown_keys: source keys that match no frame; reported, never posted.
        ambiguous_keys: keys that match more than one frame; reported, never posted.
        zeroed: how many of the changes set a frame missing from the source to 0.
    """

    changes: pd.DataFrame
    unknown_keys: list[str] = field(default_factory=list)
    ambiguous_keys: list[str] = field(default_factory=list)
    zeroed: int = 0
    netted_frames: int = 0
    netted_units: int = 0
    netting: list[dict[str, object]] = field(default_factory=list)


def compute_changes(
    source: pd.DataFrame,
    mirror: pd.DataFrame,
    *,
    match_on: MatchOn = "sku",
    missing: Missing = "ignore",
    update_price: bool = True,
    netted: pd.Series | None = None,
) -> DiffResult:
    """Compare source rows with mirror frames on the match key.

    Args:
        source: normalised source rows (key, quantity, price_cents), keys unique.
        mirror: frames as ``StateStore.load_mirror`` returns them.
        match_on: compare the source key with the frame's SKU, its GTIN-14, or its
            composite key (brand, model, colour code and eye size).
        missing: "zero" sets frames that the source lacks to quantity 0;
            "ignore" leaves them alone.
        update_price: compare and send prices; False sends quantities only.
        netted: kiosk units per frame id that the source does not count yet;
            they are subtracted from the source quantity (floored at 0) first.

    Returns:
        The changes, plus the keys that matched no frame or several.
    """
    # The shipped adapters never return a row without key or quantity. Such a row
    # is dropped here rather than compared, so the sorting and arithmetic below hold.
    complete = source[KEY].notna() & source[QUANTITY].notna()
    if not complete.all():
        source = source.loc[complete]

    key_column = MIRROR_KEY_COLUMN[match_on]
    columns = ["id", key_column, QUANTITY, PRICE_CENTS]
    present = mirror[key_column].notna()
    remote = mirror[columns] if present.all() else mirror.loc[present, columns]
    remote = remote.rename(
        columns={
            "id": FRAME_ID,
            key_column: KEY,
            QUANTITY: OLD_QUANTITY,
            PRICE_CENTS: OLD_PRICE_CENTS,
        }
    )
    source_keys = _as_string(source[KEY])
    remote_keys = _as_string(remote[KEY])

    # Keys that name several frames cannot be posted safely.
    position, repeated, source_repeated, in_source = _lookup(source_keys, remote_keys)
    found = position >= 0
    ambiguous_hit = found & source_repeated
    unknown = source.loc[~found, KEY]
    ambiguous_in_source = source.loc[ambiguous_hit, KEY]
    source_rows = np.flatnonzero(found & ~ambiguous_hit)

    netting: list[dict[str, object]] = []
    if netted is not None and len(netted):
        matched = _take_matched(source, remote, source_rows, position[source_rows])
        matched, netting = _net_out(matched, netted)
    else:
        # Only rows that may differ are gathered, and _changed_fields decides as before.
        candidates = _candidate_rows(
            source, remote, source_rows, position[source_rows], update_price=update_price
        )
        source_rows = source_rows[candidates]
        matched = _take_matched(source, remote, source_rows, position[source_rows])

    changes = _changed_fields(matched, update_price=update_price)
    zeroed = 0
    if missing == "zero":
        absent = remote.loc[
            ~repeated
            & ~in_source
            & (remote[OLD_QUANTITY] != 0).to_numpy(dtype=bool, na_value=False)
        ]
        zeroed = len(absent)
        changes = pd.concat([changes, _zero_rows(absent)], ignore_index=True)

    return DiffResult(
        changes=changes.reset_index(drop=True),
        unknown_keys=sorted(unknown.astype(str).tolist()),
        ambiguous_keys=sorted(set(ambiguous_in_source.astype(str).tolist())),
        zeroed=zeroed,
        netted_frames=len(netting),
        netted_units=sum(int(entry["held_back"]) for entry in netting),  # type: ignore[call-overload]
        netting=netting,
    )


def _as_string(values: pd.Series) -> pa.Array:
    """Return the values as one Arrow large_string array, nulls for missing values."""
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("string")
    array = pa.array(values.array, type=pa.large_string(), from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _lookup(
    source_keys: pa.Array, remote_keys: pa.Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find each source key among the mirror's keys, with one hash pass over both.

    Returns:
        Four arrays. The first is, for each source key, the position of a
        mirror row with that key, or -1. A repeated key is never matched to a
        frame, so any of its positions will do. The second marks the mirror
        keys that occur more than once, like ``duplicated(keep=False)``, the
        third the source keys that are such keys, and the fourth the mirror
        keys that occur in the source, like ``isin``.
    """
    remote_count = len(remote_keys)
    encoded = pc.dictionary_encode(
        pa.concat_arrays([remote_keys, source_keys]), null_encoding="encode"
    )
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    remote_codes, source_codes = codes[:remote_count], codes[remote_count:]
    counts = np.bincount(remote_codes, minlength=len(encoded.dictionary))
    first = np.full(len(encoded.dictionary), -1, dtype=np.int64)
    first[remote_codes] = np.arange(remote_count, dtype=np.int64)
    in_source = np.zeros(len(encoded.dictionary), dtype=bool)
    in_source[source_codes] = True
    return (
        first[source_codes],
        counts[remote_codes] > 1,
        counts[source_codes] > 1,
        in_source[remote_codes],
    )


def _take_matched(
    source: pd.DataFrame, remote: pd.DataFrame, source_rows: np.ndarray, remote_rows: np.ndarray
) -> pd.DataFrame:
    """Return the matched pairs in source order, as a left merge on the key would."""
    matched = {name: source[name].array.take(source_rows) for name in source.columns}
    for name in (FRAME_ID, OLD_QUANTITY, OLD_PRICE_CENTS):
        matched[name] = remote[name].array.take(remote_rows)
    return pd.DataFrame(matched)


def _candidate_rows(
    source: pd.DataFrame,
    remote: pd.DataFrame,
    source_rows: np.ndarray,
    remote_rows: np.ndarray,
    *,
    update_price: bool,
) -> np.ndarray | slice:
    """Return which matched pairs may differ, by the rules of ``_changed_fields``.

    Comparing the Int64 columns as NumPy arrays means that only the few
    changed rows are gathered into a DataFrame, not every matched row. For
    other dtypes every pair is a candidate.
    """
    parts = [source[QUANTITY], remote[OLD_QUANTITY], source[PRICE_CENTS], remote[OLD_PRICE_CENTS]]
    if not all(isinstance(part.dtype, pd.Int64Dtype) for part in parts):
        return slice(None)
    quantity, quantity_na = _int_parts(source[QUANTITY], source_rows)
    old_quantity, old_quantity_na = _int_parts(remote[OLD_QUANTITY], remote_rows)
    price, price_na = _int_parts(source[PRICE_CENTS], source_rows)
    old_price, old_price_na = _int_parts(remote[OLD_PRICE_CENTS], remote_rows)
    candidates: np.ndarray = quantity_na | old_quantity_na | (quantity != old_quantity)
    if update_price:
        # A missing source price never makes a change.
        candidates |= ~price_na & (old_price_na | (price != old_price))
    return candidates


def _int_parts(values: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return an Int64 Series' values at ``rows`` (0 where missing) and its missing mask."""
    missing = values.isna().to_numpy()[rows]
    return values.to_numpy(dtype=np.int64, na_value=0)[rows], missing


def _net_out(
    matched: pd.DataFrame, netted: pd.Series
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """Subtract unsettled kiosk units from the source quantities of matched frames."""
    held = matched[FRAME_ID].map(netted).fillna(0).astype("Int64")
    lowered = (matched[QUANTITY] - held).clip(lower=0)
    affected = held > 0
    netting = [
        {
            "key": key,
            "frame_id": frame_id,
            "source_quantity": int(source),
            "held_back": int(source - kept),
        }
        for key, frame_id, source, kept in zip(
            matched.loc[affected, KEY],
            matched.loc[affected, FRAME_ID],
            matched.loc[affected, QUANTITY],
            lowered[affected],
            strict=True,
        )
    ]
    return matched.assign(**{QUANTITY: lowered}), netting


def _changed_fields(matched: pd.DataFrame, *, update_price: bool) -> pd.DataFrame:
    quantity_differs = (matched[QUANTITY] != matched[OLD_QUANTITY]).fillna(True).astype(bool)
    if update_price:
        # A missing source price means "leave the price alone", never "clear it".
        price_differs = (
            matched[PRICE_CENTS].notna()
            & (matched[PRICE_CENTS] != matched[OLD_PRICE_CENTS]).fillna(True)
        ).astype(bool)
    else:
        price_differs = pd.Series(False, index=matched.index)

    rows = matched.loc[quantity_differs | price_differs].copy()
    rows[QUANTITY] = rows[QUANTITY].where(quantity_differs[rows.index])
    rows[PRICE_CENTS] = rows[PRICE_CENTS].where(price_differs[rows.index])
    return rows[[FRAME_ID, KEY, QUANTITY, PRICE_CENTS, OLD_QUANTITY, OLD_PRICE_CENTS]].astype(
        {QUANTITY: "Int64", PRICE_CENTS: "Int64"}
    )


def _zero_rows(absent: pd.DataFrame) -> pd.DataFrame:
    rows = absent[[FRAME_ID, KEY, OLD_QUANTITY, OLD_PRICE_CENTS]].copy()
    rows[QUANTITY] = pd.Series(0, index=rows.index, dtype="Int64")
    rows[PRICE_CENTS] = pd.Series(pd.NA, index=rows.index, dtype="Int64")
    return rows[[FRAME_ID, KEY, QUANTITY, PRICE_CENTS, OLD_QUANTITY, OLD_PRICE_CENTS]]


__all__ = ["DiffResult", "compute_changes"]
