"""Tests of the shared value normaliser that stock adapters call."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from adapters.base import KEY, PRICE_CENTS, QUANTITY, Rejection
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


def prices(
    values: list[str], options: ValueOptions = OPTIONS, currency: str | None = None
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Normalise one row per price and return the rows and rejections."""
    cells = pd.DataFrame(
        {
            "ref": [f"K{i}" for i in range(len(values))],
            "stock": ["1"] * len(values),
            "price": values,
        }
    )
    return normalise_cells(cells, options, locate=locate, currency=currency)


@pytest.mark.parametrize(
    ("decimal", "price"), [(".", "45."), (".", "248."), (",", "45,")], ids=["point", "cut", "comma"]
)
def test_normalise_cells_trailing_separator_rejected(decimal: str, price: str) -> None:
    """A price that ends with its decimal separator is rejected, as a cut value may."""
    options = OPTIONS.model_copy(update={"decimal": decimal})

    rows, rejections = prices([price], options)

    assert len(rows) == 0
    assert f"price '{price}' is not an amount" in rejections[0].reason


def test_normalise_cells_quantity_leading_zeros() -> None:
    """Leading zeros do not count towards the quantity digit limit, other digits do."""
    cells = pd.DataFrame(
        {"ref": ["A", "B", "C"], "stock": ["0000000007", "0000000000", "1234567890"], "price": ""}
    )

    rows, rejections = normalise_cells(cells, OPTIONS, locate=locate)

    assert rows[QUANTITY].tolist() == [7, 0]
    assert [r.location for r in rejections] == ["product row=3"]
    assert "quantity '1234567890' is too large" in rejections[0].reason


@pytest.mark.parametrize(
    ("price", "currency", "expected"),
    [
        ("5€", None, 500),
        ("5€", "EUR", 500),
        ("5€", "USD", "price '5€' is in EUR, but currency is USD"),
        ("¥500", "JPY", 50000),
        ("¥500", "USD", "price '¥500' is in JPY, but currency is USD"),
        ("CHF 5", "USD", "price 'CHF 5' is in CHF, but currency is USD"),
        ("5", "USD", 500),
        ("$5 USD", None, 500),
        ("USD 5 EUR", None, "price 'USD 5 EUR' names two currencies, USD and EUR"),
        ("£5 $", "GBP", "price '£5 $' names two currencies, GBP and USD"),
        ("x5€", "USD", "price 'x5€' is not an amount"),
    ],
    ids=[
        "any",
        "same",
        "other-sign",
        "yen",
        "other-yen",
        "other-code",
        "unmarked",
        "sign-and-code-agree",
        "two-codes",
        "two-signs",
        "not-amount-first",
    ],
)
def test_normalise_cells_currency(price: str, currency: str | None, expected: int | str) -> None:
    """A price naming another currency than ``currency``, or two currencies, is rejected."""
    rows, rejections = prices([price], currency=currency)

    if isinstance(expected, int):
        assert rejections == []
        assert rows[PRICE_CENTS].tolist() == [expected]
    else:
        assert len(rows) == 0
        assert expected in rejections[0].reason


@pytest.mark.parametrize(
    ("options", "currency", "price", "fragments"),
    [
        (
            {"decimal": ","},
            None,
            "1.299,00",
            [
                "such as € or EUR",
                "Write it like 289,00",
                "If '.' separates thousands, set thousands = \".\"",
            ],
        ),
        (
            {"decimal": ","},
            None,
            "1 299,00",
            ["If ' ' separates thousands, set thousands = \" \""],
        ),
        ({}, None, "1,299.00", ["such as $ or USD", 'set thousands = ","']),
        ({}, "GBP", "1'299.00", ["such as £ or GBP", 'set thousands = "\'"']),
        ({"decimal": ","}, "CHF", "abc", ["Write it like 289,00, optionally with the code CHF."]),
    ],
    ids=["german-dot", "german-space", "us-comma", "swiss-apostrophe", "code-without-sign"],
)
def test_normalise_cells_price_reason_hints(
    options: dict[str, str], currency: str | None, price: str, fragments: list[str]
) -> None:
    """The reason for a price that is not an amount shows the currency and suggests thousands."""
    _, rejections = prices([price], OPTIONS.model_copy(update=options), currency=currency)

    for fragment in fragments:
        assert fragment in rejections[0].reason


def test_normalise_cells_no_thousands_hint_when_set() -> None:
    """A rejected price gets no thousands hint for the separator that thousands already names."""
    options = OPTIONS.model_copy(update={"thousands": ","})

    rows, rejections = prices(["1,299.00", "1,29.00"], options)

    assert rows[PRICE_CENTS].tolist() == [129900]
    assert "thousands" not in rejections[0].reason
