"""Turn raw stock cells into the normalised rows of ``adapters.base``.

Every stock adapter ends the same way: it has one text cell per row and
column, and needs keys, quantities and prices in the shape that
``SourceResult.rows`` requires, plus a ``Rejection`` for each row that fails.
This module does that step column-wise on pyarrow strings, so an adapter only
reads its source and says where each row is.

Usage, in an adapter whose options model adds its own fields to ``ValueOptions``::

    from adapters.base import SourceResult, StockSource
    from adapters.normalise import ValueOptions, cells_as_text, normalise_cells, value_columns

    class ProductTableOptions(ValueOptions):
        table: str = "llx_product"

    class ProductTableSource(StockSource[ProductTableOptions]):
        options_model = ProductTableOptions

        def read(self) -> SourceResult:
            frame = self._query(value_columns(self.options) + ["rowid"])  # any DataFrame
            cells = cells_as_text(frame[value_columns(self.options)])
            rowids = frame["rowid"].tolist()
            rows, rejections = normalise_cells(
                cells,
                self.options,
                locate=lambda positions: [f"llx_product rowid={rowids[p]}" for p in positions],
                adapter="erp_database",
            )
            return SourceResult(rows=rows, rejections=rejections,
                                description=self.describe(), total_rows=len(cells))

``cells`` has one column per name in ``value_columns(options)`` and one row per
source row, in source order. Its cells are text, so a barcode keeps its leading
zeros. Empty text, <NA> and None are all empty. ``cells_as_text`` turns numbers
from a database or a spreadsheet into that text without losing digits.

Rules that the options do not change:

* A quantity is a whole number of 0 or more. ``2``, ``2.0`` and, with
  ``decimal = ","``, ``2,0`` are 2, and ``007`` is 7. ``2.5``, ``abc`` and
  ``-1`` are rejected, and so is a count of more than 9 digits after its
  leading zeros.
* A price is an amount with at most two decimal places, converted to integer
  cents. ``288.99``, ``45`` and ``.5`` are read, and so are extra zero places
  (``288.9900``). ``45.`` is rejected: exports do not write a decimal separator
  without digits after it, but a file cut while it was being written can end
  that way. One currency sign ``$``, ``€``, ``£`` or ``¥``, or one three-letter
  upper-case code such as ``USD`` or ``EUR``, may come before and one after the
  amount, with or without a space: ``$45.00``, ``45.00 USD``, ``EUR 45``. The
  signs are read as USD, EUR, GBP and JPY, in that order. A sign and a code
  must name the same currency, so ``$45 USD`` is read and ``USD 45 EUR`` is
  rejected. Plus and minus signs, exponents and other text are rejected. An
  empty price cell gives a missing price, which leaves the frame's price in
  Eyekiosk as it is.
* With ``currency`` passed to ``normalise_cells``, a price that names another
  currency, by sign or code, is rejected. Prices without a sign or code are read.
* Each rejected row is reported once, with every reason that applies, at the
  location that ``locate`` returns for it.
* A key that appears on several rows with the same quantity and price is kept
  once, without a rejection. A key whose rows differ is rejected on every row,
  because the source does not say which row is right. Only rows that passed
  the other checks take part in this comparison.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, NonNegativeInt, field_validator, model_validator

from adapters.base import KEY, PRICE_CENTS, QUANTITY, AdapterOptions, Rejection
from sync.keys import (
    COMPOSITE_PARTS,
    STRING_DTYPE,
    SkuCase,
    normalise_composite,
    normalise_gtin,
    normalise_sku,
)

DEFAULT_AVAILABLE_VALUES = ("1", "yes", "true", "instock", "in stock")
DEFAULT_UNAVAILABLE_VALUES = ("0", "no", "false", "outofstock", "out of stock")
# Bounds that keep parsed numbers exact: int64 quantities, and prices whose cents
# survive the float64 step (12 integer digits plus 2 places fit in 53 bits).
MAX_QUANTITY_DIGITS = 9
MAX_PRICE_INTEGER_DIGITS = 12
# A float64 holds every whole number of up to 15 significant digits exactly
# (2**53 is about 9.007e15), so such a number can be written back as its digits.
MAX_EXACT_FLOAT_DIGITS = 15
# Conflicting duplicates name at most this many rows in their reason.
MAX_LISTED_ROWS = 5
# RE2 syntax (pyarrow): barcodes that a spreadsheet turned into numbers, written
# in scientific notation (8.05289E+12) or with a fraction (8052892140274.0).
_SCIENTIFIC = r"^[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+$"
_FRACTION = r"^[0-9]+[.,][0-9]+$"
# RE2 syntax (pyarrow): one currency sign or code at the start or the end.
_CURRENCY = r"(?:[$€£¥]|[A-Z]{3})"
_CURRENCY_AFFIXES = rf"^{_CURRENCY}[ \x{{00a0}}]*|[ \x{{00a0}}]*{_CURRENCY}$"
#: ISO 4217 code of each currency sign that a price may carry. ``¥`` is read as
#: the yen, although China's yuan uses the same sign.
CURRENCY_SIGNS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
# Thousands separators that a rejected price is checked for, to suggest ``thousands``.
_THOUSANDS_SEPARATORS = (",", ".", " ", "'")

KeyType = Literal["sku", "barcode", "composite"]
#: Maps 0-based row positions in ``cells`` to one location string each.
Locate = Callable[[Sequence[int]], list[str]]
#: Names the rows of one conflicting key inside its reason, e.g. ``lines 11, 13``.
Cite = Callable[[Sequence[int]], str]


class ColumnMap(AdapterOptions):
    """Names of the source columns that hold the key, the quantity and the price.

    Attributes:
        key: one column, or a list of columns. With key_type "sku" their trimmed
            values are joined with ``key_separator`` (Shopify:
            ``["Handle", "Option1 Value"]``). With key_type "composite" it is
            four columns: brand, model, colour code and eye size.
        quantity: the stock count column.
        price: the retail price column. None leaves every price as it is.
    """

    key: str | list[str]
    quantity: str
    price: str | None = None

    @field_validator("key")
    @classmethod
    def _check_key(cls, key: str | list[str]) -> str | list[str]:
        names = [key] if isinstance(key, str) else key
        if not names:
            raise ValueError("name at least one key column")
        if len(set(names)) != len(names):
            raise ValueError(f"key columns repeat a name: {names}")
        return key

    def key_columns(self) -> list[str]:
        """Return the key columns as a list."""
        return [self.key] if isinstance(self.key, str) else list(self.key)


class AvailabilityOptions(AdapterOptions):
    """An in-stock column that supplies the quantity where the quantity cell is empty.

    WooCommerce leaves ``Stock`` empty for products whose stock it does not
    manage and writes ``1`` or ``0`` in ``In stock?``. Values are compared after
    trimming, ignoring case. A value in neither list rejects the row.

    Attributes:
        column: name of the availability column, e.g. ``In stock?``.
        available_values: values that mean in stock.
        unavailable_values: values that mean out of stock.
        available_quantity: quantity sent for an in-stock row.
        unavailable_quantity: quantity sent for an out-of-stock row.
    """

    column: str
    available_values: list[str] = Field(default_factory=lambda: list(DEFAULT_AVAILABLE_VALUES))
    unavailable_values: list[str] = Field(default_factory=lambda: list(DEFAULT_UNAVAILABLE_VALUES))
    available_quantity: NonNegativeInt = 1
    unavailable_quantity: NonNegativeInt = 0

    @model_validator(mode="after")
    def _check_values(self) -> AvailabilityOptions:
        overlap = {v.strip().casefold() for v in self.available_values} & {
            v.strip().casefold() for v in self.unavailable_values
        }
        if overlap:
            raise ValueError(
                f"values {sorted(overlap)} are in both available_values and unavailable_values"
            )
        return self


class ValueOptions(AdapterOptions):
    """Options that say how to read keys, quantities and prices from text cells.

    An adapter's options model subclasses this and adds where to read from.

    Attributes:
        columns: which columns hold the key, quantity and price.
        decimal: decimal separator of quantities and prices, ``.`` or ``,``.
        thousands: thousands separator of quantities and prices, or None for none.
        key_separator: text between the values of an SKU key made of several columns.
        key_type: "sku" keeps keys as trimmed text. "barcode" turns them into
            14-digit GTINs and rejects invalid barcodes. "composite" builds
            ``brand|model|colour code|eye size`` keys from four columns with
            ``sync.keys.normalise_composite``.
        key_case: "keep", "upper" or "lower"; applies to SKU keys only.
        check_digit: with key_type "barcode", reject barcodes whose GS1 check
            digit is wrong.
        empty_quantity: what an empty quantity cell means: "reject" the row,
            a number to use instead, or "availability" to read ``availability``.
        availability: the in-stock column that "availability" reads.
    """

    columns: ColumnMap
    decimal: Literal[".", ","] = "."
    thousands: Literal[",", ".", " ", "'"] | None = None
    key_separator: str = "/"
    key_type: KeyType = "sku"
    key_case: SkuCase = "keep"
    check_digit: bool = True
    empty_quantity: Literal["reject", "availability"] | NonNegativeInt = "reject"
    availability: AvailabilityOptions | None = None

    @model_validator(mode="after")
    def _check_value_options(self) -> ValueOptions:
        if self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both {self.decimal!r}")
        if self.key_type == "barcode" and isinstance(self.columns.key, list):
            raise ValueError("a barcode key is one column. Name it as a string in columns.key")
        if self.key_type == "composite" and (
            isinstance(self.columns.key, str) or len(self.columns.key) != len(COMPOSITE_PARTS)
        ):
            raise ValueError(
                "a composite key is a list of 4 columns in columns.key: brand, model, "
                'colour code and eye size, e.g. ["Brand", "Model", "Color Code", "Eye"]'
            )
        if self.empty_quantity == "availability" and self.availability is None:
            raise ValueError('empty_quantity = "availability" needs an [availability] table')
        if self.availability is not None and self.empty_quantity != "availability":
            raise ValueError(
                'the [availability] table is used only with empty_quantity = "availability"'
            )
        return self


def value_columns(options: ValueOptions) -> list[str]:
    """Return the source columns that ``normalise_cells`` reads, each once, in a stable order."""
    columns = options.columns
    used = [*columns.key_columns(), columns.quantity]
    if columns.price is not None:
        used.append(columns.price)
    if options.availability is not None:
        used.append(options.availability.column)
    return list(dict.fromkeys(used))


def normalise_cells(
    cells: pd.DataFrame,
    options: ValueOptions,
    *,
    locate: Locate,
    cite: Cite | None = None,
    reasons: pd.Series | None = None,
    adapter: str = "normalise",
    currency: str | None = None,
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Parse text cells into normalised stock rows and rejections.

    Args:
        cells: one row per source row in source order, with at least the
            columns of ``value_columns(options)``. Cells are text (any pandas
            string or object dtype); <NA>, None and NaN count as empty. Use
            ``cells_as_text`` first when columns hold numbers.
        options: the value-parsing options.
        locate: maps 0-based row positions in ``cells`` to location strings
            such as ``stock.csv:14``, ``llx_product rowid=12`` or
            ``feed.xml item 3``. It is called once, only when some rows are
            rejected, with their positions in ascending order.
        cite: names the rows of one conflicting key inside its reason, e.g.
            ``lines 11, 13``. By default the reason lists their locations.
        reasons: problems that the adapter found while reading, aligned with
            the rows of ``cells``, <NA> where there is none. A row with a
            reason is rejected, and this reason comes before the others.
        adapter: adapter name for the logger ``eyekiosk_sync.adapters.<adapter>``
            and the event ``<adapter>.duplicates``.
        currency: ISO 4217 code, such as ``USD``, that every price must be in.
            A price whose sign or code names another currency is rejected, and
            a price without one is read. None accepts any one currency.

    Returns:
        The rows, with columns ``key`` (pandas string, unique), ``quantity``
        (Int64) and ``price_cents`` (Int64, <NA> where there is no price) and
        a fresh RangeIndex, and the rejections in source order.

    Raises:
        KeyError: when ``cells`` lacks a column that the options name.
    """
    missing = [name for name in value_columns(options) if name not in cells.columns]
    if missing:
        raise KeyError(f"cells lack the column {missing[0]!r} that the options name")
    cells = _as_text(cells.reset_index(drop=True), value_columns(options))

    checked = _check_rows(cells, options, reasons, currency)
    rows, conflicts = _collapse_duplicates(
        checked.rows, logging.getLogger(_logger_name(adapter)), adapter
    )
    return rows, _rejections(checked, conflicts, locate, cite)


def join_limited(labels: Sequence[str], limit: int = MAX_LISTED_ROWS) -> str:
    """Join labels with commas, naming at most ``limit`` and counting the rest.

    ``join_limited(["3", "5", "7"], limit=2)`` returns ``"3, 5 and 1 more"``.
    """
    text = ", ".join(labels[:limit])
    if len(labels) > limit:
        text += f" and {len(labels) - limit} more"
    return text


def cells_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Convert every column to pyarrow-backed text that ``normalise_cells`` reads.

    Text columns keep their text. Whole numbers become their digits: ``2`` and
    ``2.0`` give ``2``, and ``8052892140274.0`` gives ``8052892140274``. A float
    with a fraction, or a whole float of more than 15 significant digits, keeps
    Python's ``repr`` (``2.5``, ``8.052892140274123e+16``), which the checks
    then reject as a barcode or a quantity, because its digits may not be the
    source's. ``Decimal`` values keep their exact text, and missing values
    (None, NaN, NaT, <NA>) become empty text.

    Returns:
        A frame with the same columns and index, every column of dtype
        ``string[pyarrow]`` with no missing values.
    """
    return pd.DataFrame(
        {name: _column_as_text(frame[name]) for name in frame.columns}, index=frame.index
    )


# Text conversion -------------------------------------------------------------


def _column_as_text(column: pd.Series) -> pd.Series:
    if column.dtype == STRING_DTYPE:
        return column.fillna("") if column.hasnans else column
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.astype(STRING_DTYPE).fillna("").str.lower()
    if pd.api.types.is_integer_dtype(column.dtype):
        return column.astype(STRING_DTYPE).fillna("")
    if pd.api.types.is_float_dtype(column.dtype):
        return _floats_as_text(column.astype("float64"))
    return pd.Series(
        [scalar_as_text(value) for value in column], index=column.index, dtype=STRING_DTYPE
    )


def _floats_as_text(column: pd.Series) -> pd.Series:
    """Write floats that hold whole numbers of up to 15 digits as digits, others as repr."""
    values = column.to_numpy(dtype="float64", na_value=np.nan)
    finite = np.isfinite(values)
    whole = finite & (np.floor(values) == values) & (np.abs(values) < 10.0**MAX_EXACT_FLOAT_DIGITS)
    text = np.full(len(values), "", dtype=object)
    if whole.any():
        text[whole] = values[whole].astype(np.int64).astype(str)
    other = finite & ~whole
    if other.any():
        text[other] = [repr(float(value)) for value in values[other]]
    return pd.Series(text, index=column.index, dtype=STRING_DTYPE)


def scalar_as_text(value: object) -> str:
    """Convert one cell value to text with the rules of ``cells_as_text``."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 10.0**MAX_EXACT_FLOAT_DIGITS:
            return str(int(value))
        return repr(value)
    if isinstance(value, Decimal):
        return "" if value.is_nan() else format(value, "f")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _as_text(cells: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Return the named columns as pyarrow strings with empty text for missing cells."""
    columns = {}
    for name in names:
        column = cells[name]
        if column.dtype != STRING_DTYPE:
            column = _column_as_text(column)
        elif column.hasnans:
            column = column.fillna("")
        columns[name] = column
    return pd.DataFrame(columns, index=cells.index)


# Row checks ------------------------------------------------------------------


class _CheckedRows:
    """Rows that passed every per-row check, plus the reasons for the others.

    Attributes:
        rows: key, quantity and price_cents of the passing rows, indexed by
            their position among the source rows.
        keys: the normalised key of every source row, <NA> where it is missing.
        reasons: per rejected position, the reasons in check order.
    """

    def __init__(self, rows: pd.DataFrame, keys: pd.Series, reasons: dict[int, list[str]]):
        self.rows = rows
        self.keys = keys
        self.reasons = reasons


def _check_rows(
    cells: pd.DataFrame,
    options: ValueOptions,
    read_reasons: pd.Series | None,
    currency: str | None,
) -> _CheckedRows:
    keys, key_reasons = _parse_keys(cells, options)
    quantities, quantity_reasons = _parse_quantities(cells, options)
    reason_columns = [*key_reasons, *quantity_reasons]
    if read_reasons is not None:
        reason_columns.insert(0, read_reasons.reset_index(drop=True))
    if options.columns.price is None:
        prices = pd.Series(pd.NA, index=cells.index, dtype="Int64")
    else:
        prices, price_reasons = _parse_prices(cells[options.columns.price], options, currency)
        reason_columns.append(price_reasons)

    # Gather reasons per row; only rejected rows reach this Python loop.
    reasons: dict[int, list[str]] = defaultdict(list)
    for column in reason_columns:
        for position, text in column.dropna().items():
            reasons[int(position)].append(str(text))

    passed = np.ones(len(cells), dtype=bool)
    passed[list(reasons)] = False
    rows = pd.DataFrame(
        {
            KEY: keys[passed].astype(STRING_DTYPE),
            QUANTITY: quantities[passed].astype("Int64"),
            PRICE_CENTS: prices[passed].astype("Int64"),
        }
    )
    return _CheckedRows(rows=rows, keys=keys, reasons=dict(sorted(reasons.items())))


def _parse_keys(cells: pd.DataFrame, options: ValueOptions) -> tuple[pd.Series, list[pd.Series]]:
    """Return the normalised keys and one reason Series per check."""
    reasons: list[pd.Series] = []
    names = options.columns.key_columns()

    if options.key_type == "barcode":
        raw = cells[names[0]]
        result = normalise_gtin(raw, check_digit=options.check_digit)
        empty = result.values.isna() & result.reasons.isna()
        reasons.append(_barcode_reasons(raw, result.reasons))
        reasons.append(
            _reason(empty, f"barcode column {names[0]!r} is empty. Fill it in or remove the row.")
        )
        return result.values, reasons

    if options.key_type == "composite":
        composite = normalise_composite(cells[names])
        reasons.append(composite.reasons + ". Fill it in or remove the row.")
        return composite.values, reasons

    keys: pd.Series | None = None
    for name in names:
        part = normalise_sku(cells[name], case=options.key_case)
        reasons.append(
            _reason(part.isna(), f"key column {name!r} is empty. Fill it in or remove the row.")
        )
        keys = part if keys is None else keys + options.key_separator + part
    assert keys is not None
    return keys.astype(STRING_DTYPE), reasons


def _barcode_reasons(raw: pd.Series, reasons: pd.Series) -> pd.Series:
    """Add the fix to each barcode reason, naming numbers that a spreadsheet changed."""
    rejected = reasons.notna().to_numpy()
    result = reasons + ". Correct the barcode in the export."
    if not rejected.any():
        return result

    # Only rejected barcodes are matched, so a clean column costs nothing here.
    positions = np.flatnonzero(rejected)
    values = raw.iloc[positions]
    text = pc.utf8_trim_whitespace(pa.array(values))
    scientific = _mask(pc.match_substring_regex(text, _SCIENTIFIC))
    fraction = _mask(pc.match_substring_regex(text, _FRACTION)) & ~scientific
    fix = "Format the column as text or as a whole number in the spreadsheet and export it again."
    for found, problem in (
        (scientific, "is in scientific notation, so its last digits are lost"),
        (fraction, "has a decimal part, so it was stored as a number"),
    ):
        if found.any():
            result.iloc[positions[found]] = [
                f"barcode '{value}' {problem}. {fix}" for value in values[found]
            ]
    return result


def _parse_quantities(
    cells: pd.DataFrame, options: ValueOptions
) -> tuple[pd.Series, list[pd.Series]]:
    """Return quantities (Int64, <NA> where rejected) and one reason Series per check."""
    raw = cells[options.columns.quantity]
    text = pc.utf8_trim_whitespace(pa.array(raw))
    empty = _mask(pc.equal(text, ""))
    pattern = f"^-?{_integer_pattern(options)}(?:[{options.decimal}]0*)?$"
    whole = _mask(pc.match_substring_regex(text, pattern)) & ~empty
    digits = _remove_separators(text, options, drop_zero_fraction=True)
    # Leading zeros (0000000007) do not count towards the digit limit.
    significant = pc.utf8_ltrim(digits, "-0")
    too_large = whole & (
        pc.fill_null(pc.utf8_length(significant), 0).to_numpy(zero_copy_only=False)
        > MAX_QUANTITY_DIGITS
    )
    parsed = whole & ~too_large

    values = np.zeros(len(raw), dtype=np.int64)
    if parsed.any():
        values[parsed] = pc.cast(digits.filter(pa.array(parsed)), pa.int64()).to_numpy(
            zero_copy_only=False
        )
    negative = parsed & (values < 0)
    valid = parsed & ~negative

    reasons = [
        _reason(
            ~empty & ~whole, "quantity '{}' is not a whole number. Enter a count of 0 or more.", raw
        ),
        _reason(too_large, "quantity '{}' is too large. Enter a count of 0 or more.", raw),
        _reason(negative, "quantity '{}' is negative. Enter a count of 0 or more.", raw),
    ]
    result = pd.Series(values, index=raw.index, dtype="Int64").where(valid)

    filled, empty_reason = _fill_empty_quantities(empty, cells, options)
    result = result.mask(empty & filled.notna().to_numpy(), filled)
    reasons.append(empty_reason)
    return result, reasons


def _fill_empty_quantities(
    empty: np.ndarray, cells: pd.DataFrame, options: ValueOptions
) -> tuple[pd.Series, pd.Series]:
    """Return the quantities used for empty cells and the reasons for those left empty."""
    index = cells.index
    setting = options.empty_quantity
    if setting == "reject":
        reason = "quantity is empty. Enter a count, or set empty_quantity in the source options."
        return pd.Series(pd.NA, index=index, dtype="Int64"), _reason(empty, reason)
    if setting != "availability":
        return pd.Series(setting, index=index, dtype="Int64"), _reason(np.zeros_like(empty), "")

    availability = options.availability
    assert availability is not None
    raw = cells[availability.column]
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pa.array(raw)))
    available = _mask(
        pc.is_in(text, pa.array([v.strip().lower() for v in availability.available_values]))
    )
    unavailable = _mask(
        pc.is_in(text, pa.array([v.strip().lower() for v in availability.unavailable_values]))
    )
    filled = pd.Series(pd.NA, index=index, dtype="Int64")
    filled.iloc[np.flatnonzero(available)] = availability.available_quantity
    filled.iloc[np.flatnonzero(unavailable)] = availability.unavailable_quantity
    unknown = empty & ~available & ~unavailable
    reason = _reason(
        unknown,
        f"quantity is empty and {availability.column} '{{}}' is in neither available_values "
        f"nor unavailable_values. Add the value to one of them.",
        raw,
    )
    return filled, reason


def _parse_prices(
    raw: pd.Series, options: ValueOptions, currency: str | None
) -> tuple[pd.Series, pd.Series]:
    """Return prices in cents (Int64, <NA> where empty or rejected) and the reasons."""
    text = pc.utf8_trim_whitespace(pa.array(raw))
    empty = _mask(pc.equal(text, ""))
    amount = pc.replace_substring_regex(text, _CURRENCY_AFFIXES, "")
    decimal = f"[{options.decimal}]"
    # At least one digit after the separator: a cut "248.99" can end as "248.".
    number = f"^(?:{_integer_pattern(options)}(?:{decimal}[0-9]+)?|{decimal}[0-9]+)$"
    is_number = _mask(pc.match_substring_regex(amount, number)) & ~empty
    plain = pc.replace_substring(_remove_separators(amount, options), options.decimal, ".")
    places_ok = _mask(pc.match_substring_regex(plain, r"^[0-9]*(?:\.[0-9]{0,2}0*)?$"))
    size_ok = _mask(
        pc.match_substring_regex(plain, rf"^[0-9]{{0,{MAX_PRICE_INTEGER_DIGITS}}}(?:\.|$)")
    )
    currency_reasons = _currency_reasons(text, amount, raw, currency)
    valid = is_number & places_ok & size_ok & currency_reasons.isna().to_numpy()

    cents = np.zeros(len(raw), dtype=np.int64)
    if valid.any():
        units = pc.cast(plain.filter(pa.array(valid)), pa.float64()).to_numpy(zero_copy_only=False)
        cents[valid] = np.round(units * 100).astype(np.int64)
    reason_parts = [
        _not_amount_reasons(~empty & ~is_number, amount, raw, options, currency),
        currency_reasons.where(is_number),
        _reason(
            is_number & ~places_ok,
            "price '{}' has more than two decimal places. Round it to cents.",
            raw,
        ),
        _reason(
            is_number & places_ok & ~size_ok,
            f"price '{{}}' is too large: it has more than {MAX_PRICE_INTEGER_DIGITS} digits "
            f"before the decimal separator.",
            raw,
        ),
    ]
    reasons = reason_parts[0]
    for part in reason_parts[1:]:
        # fillna on pyarrow strings copies the column, so skip parts without a reason.
        if part.notna().any():
            reasons = reasons.fillna(part)
    return pd.Series(cents, index=raw.index, dtype="Int64").where(valid), reasons


def _currency_reasons(
    text: pa.Array, amount: pa.Array, raw: pd.Series, currency: str | None
) -> pd.Series:
    """Return reasons for prices that name two currencies, or another one than ``currency``.

    Args:
        text: the trimmed price cells.
        amount: ``text`` without its currency sign or code.
        raw: the price cells as read, for the reasons.
        currency: the expected ISO 4217 code, or None to accept any one currency.
    """
    result = pd.Series(pd.NA, index=raw.index, dtype=STRING_DTYPE)
    marked = _mask(pc.not_equal(text, amount))
    if not marked.any():
        return result

    # Most cells carry one marker or none, so the markers are read only where
    # a cell has two, or one that is not the expected currency's.
    positions = np.flatnonzero(marked)
    subset = text.filter(pa.array(marked))
    check = _mask(pc.match_substring_regex(subset, f"(?s)^{_CURRENCY}.*{_CURRENCY}$"))
    if currency is not None:
        # A cell with one marker is in the expected currency when it starts or
        # ends with that currency's code or sign.
        allowed = [currency, *(sign for sign, code in CURRENCY_SIGNS.items() if code == currency)]
        expected = np.zeros(len(positions), dtype=bool)
        for marker in allowed:
            expected |= _mask(pc.starts_with(subset, marker)) | _mask(pc.ends_with(subset, marker))
        check |= ~expected
    if not check.any():
        return result

    positions = positions[check]
    subset = subset.filter(pa.array(check))
    prefix = _currency_codes(pc.extract_regex(subset, f"^(?P<code>{_CURRENCY})"))
    suffix = _currency_codes(pc.extract_regex(subset, f"(?P<code>{_CURRENCY})$"))
    values = raw.iloc[positions]
    for index, (first, last) in enumerate(zip(prefix, suffix, strict=True)):
        if first and last and first != last:
            reason = (
                f"price '{values.iloc[index]}' names two currencies, {first} and {last}. "
                f"Keep one currency sign or code."
            )
        elif currency is not None and (first or last) != currency:
            reason = (
                f"price '{values.iloc[index]}' is in {first or last}, but currency is "
                f"{currency}. Export the prices in {currency}, or set currency to the "
                f"currency of the export."
            )
        else:
            continue
        result.iloc[positions[index]] = reason
    return result


def _currency_codes(matches: pa.StructArray) -> list[str | None]:
    """Return the ISO 4217 code of each matched sign or code, None where nothing matched."""
    found = pc.struct_field(matches, [0]).to_pylist()
    return [CURRENCY_SIGNS.get(marker, marker) if marker else None for marker in found]


def _not_amount_reasons(
    mask: np.ndarray,
    amount: pa.Array,
    raw: pd.Series,
    options: ValueOptions,
    currency: str | None,
) -> pd.Series:
    """Return the reason for each price that is not an amount, with an example to follow.

    A price written with thousands separators that the options do not name,
    such as ``1.299,00`` without ``thousands = "."``, gets a hint to set them.
    """
    result = _reason(
        mask, f"price '{{}}' is not an amount. {_amount_example(options, currency)}", raw
    )
    if not mask.any():
        return result

    positions = np.flatnonzero(mask)
    subset = amount.filter(pa.array(mask))
    for separator in _THOUSANDS_SEPARATORS:
        if separator in (options.decimal, options.thousands):
            continue
        grouped = rf"^[0-9]{{1,3}}(?:[{separator}][0-9]{{3}})+(?:[{options.decimal}][0-9]+)?$"
        hinted = positions[_mask(pc.match_substring_regex(subset, grouped))]
        hint = f" If '{separator}' separates thousands, set thousands = \"{separator}\"."
        result.iloc[hinted] = result.iloc[hinted] + hint
    return result


def _amount_example(options: ValueOptions, currency: str | None) -> str:
    """Return the sentence that shows how to write a price, in the expected currency."""
    code = currency or ("EUR" if options.decimal == "," else "USD")
    sign = next((sign for sign, named in CURRENCY_SIGNS.items() if named == code), None)
    markers = f"a currency sign or code such as {sign} or {code}" if sign else f"the code {code}"
    return f"Write it like 289{options.decimal}00, optionally with {markers}."


def _integer_pattern(options: ValueOptions) -> str:
    """RE2 pattern of the integer part, with optional thousands groups."""
    if options.thousands is None:
        return "[0-9]+"
    return f"(?:[0-9]+|[0-9]{{1,3}}(?:[{options.thousands}][0-9]{{3}})+)"


def _remove_separators(
    text: pa.ChunkedArray | pa.Array, options: ValueOptions, *, drop_zero_fraction: bool = False
) -> pa.ChunkedArray | pa.Array:
    if options.thousands is not None:
        text = pc.replace_substring(text, options.thousands, "")
    if drop_zero_fraction:
        text = pc.replace_substring_regex(text, f"[{options.decimal}]0*$", "")
    return text


def _mask(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _reason(
    mask: np.ndarray | pd.Series, template: str, values: pd.Series | None = None
) -> pd.Series:
    """Return ``template`` (with ``{}`` filled from ``values``) where ``mask`` is set, else <NA>.

    Only the masked rows are formatted, so a clean source costs one empty Series.
    """
    selected = np.asarray(mask, dtype=bool)
    index = values.index if values is not None else pd.RangeIndex(len(selected))
    result = pd.Series(pd.NA, index=index, dtype=STRING_DTYPE)
    if selected.any():
        positions = np.flatnonzero(selected)
        if values is None:
            result.iloc[positions] = template
        else:
            result.iloc[positions] = [template.format(value) for value in values.iloc[positions]]
    return result


# Duplicates and rejections ---------------------------------------------------


def _logger_name(adapter: str) -> str:
    return f"eyekiosk_sync.adapters.{adapter}"


def _collapse_duplicates(
    rows: pd.DataFrame, log: logging.Logger, adapter: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep one row per key and return those rows and the rows of conflicting keys."""
    repeated = rows[KEY].duplicated(keep=False)
    if not repeated.any():
        return rows.reset_index(drop=True), rows.iloc[0:0]

    candidates = rows[repeated]
    distinct = candidates.drop_duplicates()
    conflicting_keys = distinct.loc[distinct[KEY].duplicated(), KEY].unique()
    conflicting = rows[KEY].isin(conflicting_keys)
    kept = rows[~conflicting].drop_duplicates(subset=KEY, keep="first")
    log.info(
        "%s.duplicates identical_rows_dropped=%d conflicting_keys=%d",
        adapter,
        len(rows) - int(conflicting.sum()) - len(kept),
        len(conflicting_keys),
    )
    return kept.reset_index(drop=True), rows[conflicting]


def _rejections(
    checked: _CheckedRows, conflicts: pd.DataFrame, locate: Locate, cite: Cite | None
) -> list[Rejection]:
    if not checked.reasons and conflicts.empty:
        return []
    positions = sorted(set(checked.reasons) | {int(p) for p in conflicts.index})
    locations = dict(zip(positions, locate(positions), strict=True))

    found: dict[int, Rejection] = {}
    for position, reasons in checked.reasons.items():
        key = checked.keys.iloc[position]
        found[position] = Rejection(
            location=locations[position],
            reason=" ".join(reasons),
            key=None if pd.isna(key) else str(key),
        )
    for key, group in conflicts.groupby(KEY, sort=False):
        rows = [int(p) for p in group.index]
        where = cite(rows) if cite else join_limited([locations[p] for p in rows])
        reason = (
            f"key {key!r} appears on {len(group)} rows ({where}) with different "
            f"quantity or price. Keep one row per key."
        )
        for position in rows:
            found[position] = Rejection(location=locations[position], reason=reason, key=str(key))
    return [found[position] for position in sorted(found)]


__all__ = [
    "CURRENCY_SIGNS",
    "MAX_EXACT_FLOAT_DIGITS",
    "AvailabilityOptions",
    "Cite",
    "ColumnMap",
    "KeyType",
    "Locate",
    "ValueOptions",
    "cells_as_text",
    "join_limited",
    "normalise_cells",
    "scalar_as_text",
    "value_columns",
]
