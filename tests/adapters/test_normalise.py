"""Tests of the shared value normaliser that stock adapters call."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from adapters.base import KEY, PRICE_CENTS, QUANTITY
from adapters.normalise import ValueOptions, cells_as_text, join_limited, normalise_cells

OPTIONS = ValueOptions.model_validate(
    {"columns": {"key": "ref", "quantity": "stock", "price": "price"}}
)


def locate(positions: Sequence[int]) -> list[str]:
    return [f"product row={p + 1}" for p in positions]


def test_cells_as_text_numbers() -> None:
    """Whole numbers become digits, fractions keep repr, and missing values become empty."""
    frame = pd.DataFrame(
        {
            "ints": pd.Series([2, None, 0], dtype="Int64"),
            "floats": [2.0, 2.5, np.nan],
            "barcodes": [8052892140274.0, 1.2345678901234567e16, 12.0],
            "mixed": [Decimal("288.990"), None, True],
        }
    )

    text = cells_as_text(frame)

    assert text["ints"].tolist() == ["2", "", "0"]
    assert text["floats"].tolist() == ["2", "2.5", ""]
    assert text["barcodes"].tolist() == ["8052892140274", "1.2345678901234568e+16", "12"]
    assert text["mixed"].tolist() == ["288.990", "", "true"]
    assert all(str(dtype) == "string" for dtype in text.dtypes)


def test_normalise_cells_object_columns() -> None:
    """Object columns with None are read like text columns with empty cells."""
    cells = pd.DataFrame(
        {"ref": ["A", "B", None], "stock": ["1", None, "2"], "price": [None, "3", "4"]}
    )

    rows, rejections = normalise_cells(cells, OPTIONS, locate=locate)

    assert rows[KEY].tolist() == ["A"]
    assert rows[QUANTITY].tolist() == [1]
    assert rows[PRICE_CENTS].isna().tolist() == [True]
    assert [r.location for r in rejections] == ["product row=2", "product row=3"]
    assert "quantity is empty" in rejections[0].reason
    assert "key column 'ref' is empty" in rejections[1].reason


def test_normalise_cells_read_reasons_first() -> None:
    """A reason from reading rejects the row and comes before the value reasons."""
    cells = pd.DataFrame({"ref": ["A", "B"], "stock": ["1", "-1"], "price": ["", ""]})
    reasons = pd.Series([pd.NA, "item is truncated."], dtype="string")

    rows, rejections = normalise_cells(cells, OPTIONS, locate=locate, reasons=reasons)

    assert rows[KEY].tolist() == ["A"]
    assert rejections[0].reason.startswith("item is truncated. quantity '-1' is negative")


def test_normalise_cells_conflict_default_cites_locations() -> None:
    """Without cite, a conflicting key's reason lists the rows' locations."""
    cells = pd.DataFrame({"ref": ["A", "A"], "stock": ["1", "2"], "price": ["", ""]})

    rows, rejections = normalise_cells(cells, OPTIONS, locate=locate)

    assert len(rows) == 0
    assert "(product row=1, product row=2)" in rejections[0].reason


def test_normalise_cells_missing_column() -> None:
    """A cells frame without a configured column raises KeyError naming it."""
    with pytest.raises(KeyError, match="price"):
        normalise_cells(pd.DataFrame({"ref": ["A"], "stock": ["1"]}), OPTIONS, locate=locate)


def test_join_limited_counts_rest() -> None:
    """Labels beyond the limit are counted, not listed."""
    assert join_limited(["3", "5", "7"], limit=2) == "3, 5 and 1 more"
    assert join_limited(["3"]) == "3"
