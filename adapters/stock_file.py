"""CSV stock-export adapter, selected with ``adapter = "csv"``.

Reads a stock export written by practice software, a shop or a spreadsheet
(CSV or TSV) with configuration only: the options name the columns, the
delimiter, the encoding and the number format. Cells are read as text, so keys
keep their leading zeros, and are then converted column-wise.

Rules that the options do not change:

* A quantity is a whole number of 0 or more. ``2``, ``2.0`` and, with
  ``decimal = ","``, ``2,0`` are 2. ``2.5``, ``abc`` and ``-1`` are rejected.
* A price is an amount with at most two decimal places, converted to integer
  cents. ``288.99``, ``45``, ``45.`` and ``.5`` are read, and so are extra zero
  places (``288.9900``). One currency sign ``$``, ``€``, ``£`` or ``¥``, or one
  three-letter upper-case code such as ``USD`` or ``EUR``, may come before and
  one after the amount, with or without a space: ``$45.00``, ``45.00 USD``,
  ``EUR 45``. Signs, exponents and other text are rejected. An empty price cell
  gives a missing price, which leaves the frame's price in Eyekiosk as it is.
* Each rejected row is reported once, with every reason that applies, at
  ``<file name>:<line>``. The line is the physical line on which the row
  starts, counting the header, blank lines and line breaks inside quoted cells.
* A key that appears on several rows with the same quantity and price is kept
  once, without a rejection. A key whose rows differ is rejected on every row,
  because the export does not say which row is right. Only rows that passed
  the other checks take part in this comparison.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from adapters.base import (
    KEY,
    PRICE_CENTS,
    QUANTITY,
    AdapterOptions,
    Rejection,
    SourceResult,
    StockSource,
    empty_rows,
)
from sync.errors import SourceError
from sync.keys import STRING_DTYPE, SkuCase, normalise_gtin, normalise_sku

log = logging.getLogger("eyekiosk_sync.adapters.csv")

DEFAULT_AVAILABLE_VALUES = ("1", "yes", "true", "instock", "in stock")
DEFAULT_UNAVAILABLE_VALUES = ("0", "no", "false", "outofstock", "out of stock")
# Bounds that keep parsed numbers exact: int64 quantities, and prices whose cents
# survive the float64 step (12 integer digits plus 2 places fit in 53 bits).
MAX_QUANTITY_DIGITS = 9
MAX_PRICE_INTEGER_DIGITS = 12
# Conflicting duplicates name at most this many lines in their reason.
MAX_LISTED_LINES = 5
# RE2 syntax (pyarrow): one currency sign or code at the start or the end.
_CURRENCY = r"(?:[$€£¥]|[A-Z]{3})"
_CURRENCY_AFFIXES = rf"^{_CURRENCY}[ \x{{00a0}}]*|[ \x{{00a0}}]*{_CURRENCY}$"

Engine = Literal["auto", "pyarrow", "c"]


class ColumnMap(AdapterOptions):
    """Header names of the columns that hold the key, the quantity and the price.

    Attributes:
        key: one column, or a list of columns whose trimmed values are joined
            with ``key_separator`` (Shopify: ``["Handle", "Option1 Value"]``).
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
        column: header name of the availability column, e.g. ``In stock?``.
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


class StockFileOptions(AdapterOptions):
    """Options of the ``csv`` adapter.

    Attributes:
        path: the export file; a relative path is resolved against the folder of
            the configuration file.
        delimiter: one character between cells; ``"\\t"`` reads TSV.
        encoding: Python codec name. With ``utf-8`` a byte order mark is skipped.
        decimal: decimal separator of quantities and prices, ``.`` or ``,``.
        thousands: thousands separator of quantities and prices, or None for none.
        header_row: 1-based line number of the header. Lines above it are skipped
            and must not contain quoted line breaks.
        columns: which columns hold the key, quantity and price.
        key_separator: text between the values of a key made of several columns.
        key_type: "sku" keeps keys as trimmed text; "barcode" turns them into
            14-digit GTINs and rejects invalid barcodes.
        key_case: "keep", "upper" or "lower"; applies to SKU keys only.
        check_digit: with key_type "barcode", reject barcodes whose GS1 check
            digit is wrong.
        empty_quantity: what an empty quantity cell means: "reject" the row,
            a number to use instead, or "availability" to read ``availability``.
        availability: the in-stock column that "availability" reads.
        engine: "pyarrow" is the fast parser. "c" is pandas' own parser, which
            also reads files with ragged rows or whitespace-only lines. "auto"
            tries pyarrow and falls back to "c" when pyarrow cannot parse the file.
    """

    path: Path
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal: Literal[".", ","] = "."
    thousands: Literal[",", ".", " ", "'"] | None = None
    header_row: PositiveInt = 1
    columns: ColumnMap
    key_separator: str = "/"
    key_type: Literal["sku", "barcode"] = "sku"
    key_case: SkuCase = "keep"
    check_digit: bool = True
    empty_quantity: Literal["reject", "availability"] | NonNegativeInt = "reject"
    availability: AvailabilityOptions | None = None
    engine: Engine = "auto"

    @field_validator("delimiter")
    @classmethod
    def _check_delimiter(cls, delimiter: str) -> str:
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise ValueError(
                f"the delimiter is one character other than a quote or line break, "
                f'not {delimiter!r}. Write "\\t" for a tab'
            )
        return delimiter

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(
                f"unknown encoding {encoding!r}. Use a Python codec name such as "
                f"'utf-8' or 'cp1252'"
            ) from None
        return encoding

    @model_validator(mode="after")
    def _check_combinations(self) -> StockFileOptions:
        if self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both {self.decimal!r}")
        if self.key_type == "barcode" and isinstance(self.columns.key, list):
            raise ValueError("a barcode key is one column. Name it as a string in columns.key")
        if self.empty_quantity == "availability" and self.availability is None:
            raise ValueError('empty_quantity = "availability" needs an [availability] table')
        if self.availability is not None and self.empty_quantity != "availability":
            raise ValueError(
                'the [availability] table is used only with empty_quantity = "availability"'
            )
        return self


class StockFileSource(StockSource[StockFileOptions]):
    """Stock rows from a CSV or TSV export file (alias ``csv``)."""

    options_model = StockFileOptions

    @property
    def path(self) -> Path:
        """The export file, resolved against the configuration folder."""
        return (self.context.config_dir / self.options.path).resolve()

    def describe(self) -> str:
        """Describe the source as ``csv file <absolute path>``."""
        return f"csv file {self.path}"

    def read(self) -> SourceResult:
        """Read the export file once.

        Returns:
            One row per key, the rejected rows in file order, and ``total_rows``,
            the number of data rows in the file. A file with no header or no data
            rows gives zero rows, and the engine's guard decides what that means.

        Raises:
            SourceError: when the file is missing or unreadable, is not in the
                configured encoding, lacks a configured column, or is not valid CSV.
        """
        header = self._read_header()
        if header is None:
            log.info("csv.read path=%s rows=0 reason=no_header", self.path)
            return SourceResult(rows=empty_rows(), description=self.describe())
        self._check_columns(header)

        cells, engine = self._read_cells()
        checked = _check_rows(cells, self.options)
        rows, conflicts = _collapse_duplicates(checked.rows)

        rejections = self._rejections(checked, conflicts)
        log.info(
            "csv.read path=%s engine=%s total=%d rows=%d rejected=%d",
            self.path,
            engine,
            len(cells),
            len(rows),
            len(rejections),
        )
        return SourceResult(
            rows=rows,
            rejections=rejections,
            description=self.describe(),
            total_rows=len(cells),
        )

    # Reading ---------------------------------------------------------------

    def _read_header(self) -> list[str] | None:
        with self._errors_as_source_error(), self._open_text() as handle:
            for _, record, _ in _records(handle, self.options):
                return record
        return None

    def _check_columns(self, header: list[str]) -> None:
        used = _used_columns(self.options)
        missing = [name for name in used if name not in header]
        if missing:
            found = ", ".join(repr(name) for name in header)
            raise SourceError(
                f"column {missing[0]!r} is not in the header on line {self.options.header_row}. "
                f"The columns found are {found}. Fix the name under [columns], "
                f"or check delimiter, encoding and header_row.",
                source=self.describe(),
            )
        repeated = [name for name in used if header.count(name) > 1]
        if repeated:
            raise SourceError(
                f"column {repeated[0]!r} appears more than once in the header, "
                f"so it is unclear which one to read. Rename one of them in the export.",
                source=self.describe(),
            )

    def _read_cells(self) -> tuple[pd.DataFrame, str]:
        """Read the used columns as text and return them with the name of the parser."""
        engine = self.options.engine
        if engine in ("auto", "pyarrow"):
            try:
                with self._errors_as_source_error():
                    return self._read_with_pyarrow(), "pyarrow"
            except _ArrowParseError as error:
                if engine == "pyarrow":
                    raise SourceError(
                        f"is not valid CSV: {error}. Check delimiter and header_row, "
                        f'or set engine = "c" to read ragged rows.',
                        source=self.describe(),
                    ) from error.__cause__
                log.warning("csv.engine_fallback path=%s engine=c reason=%s", self.path, error)
        with self._errors_as_source_error():
            return self._read_with_c_parser(), "c"

    def _read_with_pyarrow(self) -> pd.DataFrame:
        used = _used_columns(self.options)
        # Arrow skips a UTF-8 byte order mark itself and decodes UTF-8 natively;
        # other encodings go through Python's codec.
        encoding = (
            "utf8"
            if _codec_name(self.options.encoding).startswith("utf-8")
            else (self.options.encoding)
        )
        try:
            table = pacsv.read_csv(
                self.path,
                read_options=pacsv.ReadOptions(
                    skip_rows=self.options.header_row - 1, encoding=encoding
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.options.delimiter,
                    quote_char='"',
                    double_quote=True,
                    newlines_in_values=True,
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=used,
                    column_types={name: pa.string() for name in used},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as error:
            if "UTF8" in str(error):
                raise self._decode_error() from error
            raise _ArrowParseError(str(error).strip()) from error
        return pd.DataFrame(
            {name: pd.Series(pd.arrays.ArrowStringArray(table.column(name))) for name in used}
        )

    def _read_with_c_parser(self) -> pd.DataFrame:
        used = _used_columns(self.options)
        frame = pd.read_csv(
            self.path,
            sep=self.options.delimiter,
            encoding=_python_encoding(self.options.encoding),
            encoding_errors="strict",
            skiprows=self.options.header_row - 1,
            header=0,
            usecols=used,
            dtype=str,
            na_filter=False,
            quotechar='"',
            doublequote=True,
            engine="c",
        )
        return frame.astype(STRING_DTYPE)[used]

    @contextmanager
    def _open_text(self) -> Iterator[IO[str]]:
        # newline="" lets the csv module see line breaks inside quoted cells.
        with self.path.open(
            encoding=_python_encoding(self.options.encoding), newline="", errors="strict"
        ) as handle:
            yield handle

    @contextmanager
    def _errors_as_source_error(self) -> Iterator[None]:
        source = self.describe()
        try:
            yield
        except FileNotFoundError as error:
            raise SourceError(
                f"file not found. Check path. A relative path is resolved against "
                f"{self.context.config_dir}.",
                source=source,
            ) from error
        except UnicodeDecodeError as error:
            raise self._decode_error() from error
        except (pd.errors.ParserError, csv.Error) as error:
            raise SourceError(
                f"is not valid CSV: {str(error).strip()}. Check delimiter and header_row.",
                source=source,
            ) from error
        except OSError as error:
            raise SourceError(
                f"cannot be read: {error.strerror or error}. Check that the path is a "
                f"file that the service user may read.",
                source=source,
            ) from error

    def _decode_error(self) -> SourceError:
        """Build the error for a file that is not in the configured encoding."""
        line, byte = _first_undecodable_line(self.path, self.options.encoding)
        where = f"line {line} (byte 0x{byte:02x})" if line else "the file"
        return SourceError(
            f"{where} is not valid {self.options.encoding}. Set encoding to the "
            f'encoding the file was saved in, for example encoding = "cp1252" for '
            f"exports from Windows programs.",
            source=self.describe(),
        )

    # Rejections ------------------------------------------------------------

    def _rejections(self, checked: _CheckedRows, conflicts: pd.DataFrame) -> list[Rejection]:
        if not checked.reasons and conflicts.empty:
            return []
        positions = set(checked.reasons) | set(conflicts.index)
        lines = self._record_lines(max(positions))
        name = self.path.name

        def location(position: int) -> str:
            if position < len(lines):
                return f"{name}:{lines[position]}"
            # NOTE: only when the csv module splits the file differently from
            # the parser that read it, which valid CSV does not cause.
            return f"{name}: data row {position + 1}"

        found: dict[int, Rejection] = {}
        for position, reasons in checked.reasons.items():
            key = checked.keys.iloc[position]
            found[position] = Rejection(
                location=location(position),
                reason=" ".join(reasons),
                key=None if pd.isna(key) else str(key),
            )
        for key, group in conflicts.groupby(KEY, sort=False):
            listed = [str(lines[p]) if p < len(lines) else "?" for p in group.index]
            where = ", ".join(listed[:MAX_LISTED_LINES])
            if len(listed) > MAX_LISTED_LINES:
                where += f" and {len(listed) - MAX_LISTED_LINES} more"
            reason = (
                f"key {key!r} appears on {len(group)} rows (lines {where}) with different "
                f"quantity or price. Keep one row per key."
            )
            for position in group.index:
                found[position] = Rejection(location=location(position), reason=reason, key=key)
        return [found[position] for position in sorted(found)]

    def _record_lines(self, last: int) -> list[int]:
        """Return the physical line on which each data row from 0 to ``last`` starts."""
        starts: list[int] = []
        with self._errors_as_source_error(), self._open_text() as handle:
            records = _records(handle, self.options)
            next(records, None)
            for start, _, _ in records:
                starts.append(start)
                if len(starts) > last:
                    break
        return starts


class _ArrowParseError(Exception):
    """pyarrow could not split the file into rows; the C parser may still read it."""


def _records(handle: IO[str], options: StockFileOptions) -> Iterator[tuple[int, list[str], int]]:
    """Yield (first line, cells, last line) for each non-blank record from the header on.

    Blank and whitespace-only lines are skipped, as pandas' parser skips them.
    """
    for _ in range(options.header_row - 1):
        handle.readline()
    offset = options.header_row - 1
    reader = csv.reader(handle, delimiter=options.delimiter, quotechar='"', doublequote=True)
    end = 0
    for record in reader:
        start = offset + end + 1
        end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        yield start, record, offset + end


def _used_columns(options: StockFileOptions) -> list[str]:
    columns = options.columns
    used = [*columns.key_columns(), columns.quantity]
    if columns.price is not None:
        used.append(columns.price)
    if options.availability is not None:
        used.append(options.availability.column)
    return list(dict.fromkeys(used))


def _codec_name(encoding: str) -> str:
    return codecs.lookup(encoding).name


def _python_encoding(encoding: str) -> str:
    # Excel and Windows tools write a byte order mark in front of UTF-8.
    return "utf-8-sig" if _codec_name(encoding) == "utf-8" else encoding


def _first_undecodable_line(path: Path, encoding: str) -> tuple[int | None, int]:
    """Return the first line that does not decode, and its first bad byte."""
    decoder = codecs.getincrementaldecoder(_python_encoding(encoding))()
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as error:
                return number, line[error.start] if error.start < len(line) else 0
    return None, 0


# Row checks ----------------------------------------------------------------


class _CheckedRows:
    """Rows that passed every per-row check, plus the reasons for the others.

    Attributes:
        rows: key, quantity and price_cents of the passing rows, indexed by
            their position among the file's data rows.
        keys: the normalised key of every data row, <NA> where it is missing.
        reasons: per rejected position, the reasons in check order.
    """

    def __init__(self, rows: pd.DataFrame, keys: pd.Series, reasons: dict[int, list[str]]):
        self.rows = rows
        self.keys = keys
        self.reasons = reasons


def _check_rows(cells: pd.DataFrame, options: StockFileOptions) -> _CheckedRows:
    cells = cells.reset_index(drop=True)
    keys, key_reasons = _parse_keys(cells, options)
    quantities, quantity_reasons = _parse_quantities(cells, options)
    reason_columns = [*key_reasons, *quantity_reasons]
    if options.columns.price is None:
        prices = pd.Series(pd.NA, index=cells.index, dtype="Int64")
    else:
        prices, price_reasons = _parse_prices(cells[options.columns.price], options)
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


def _parse_keys(
    cells: pd.DataFrame, options: StockFileOptions
) -> tuple[pd.Series, list[pd.Series]]:
    """Return the normalised keys and one reason Series per check."""
    reasons: list[pd.Series] = []
    names = options.columns.key_columns()

    if options.key_type == "barcode":
        raw = cells[names[0]]
        result = normalise_gtin(raw, check_digit=options.check_digit)
        empty = result.values.isna() & result.reasons.isna()
        reasons.append(result.reasons + ". Correct the barcode in the export.")
        reasons.append(
            _reason(empty, f"barcode column {names[0]!r} is empty. Fill it in or remove the row.")
        )
        return result.values, reasons

    keys: pd.Series | None = None
    for name in names:
        part = normalise_sku(cells[name], case=options.key_case)
        reasons.append(
            _reason(part.isna(), f"key column {name!r} is empty. Fill it in or remove the row.")
        )
        keys = part if keys is None else keys + options.key_separator + part
    assert keys is not None
    return keys.astype(STRING_DTYPE), reasons


def _parse_quantities(
    cells: pd.DataFrame, options: StockFileOptions
) -> tuple[pd.Series, list[pd.Series]]:
    """Return quantities (Int64, <NA> where rejected) and one reason Series per check."""
    raw = cells[options.columns.quantity]
    text = pc.utf8_trim_whitespace(pa.array(raw))
    empty = _mask(pc.equal(text, ""))
    pattern = f"^-?{_integer_pattern(options)}(?:[{options.decimal}]0*)?$"
    whole = _mask(pc.match_substring_regex(text, pattern)) & ~empty
    digits = _remove_separators(text, options, drop_zero_fraction=True)
    too_large = whole & (
        pc.fill_null(pc.utf8_length(pc.utf8_ltrim(digits, "-")), 0).to_numpy(zero_copy_only=False)
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
    empty: np.ndarray, cells: pd.DataFrame, options: StockFileOptions
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


def _parse_prices(raw: pd.Series, options: StockFileOptions) -> tuple[pd.Series, pd.Series]:
    """Return prices in cents (Int64, <NA> where empty or rejected) and the reasons."""
    text = pc.utf8_trim_whitespace(pa.array(raw))
    empty = _mask(pc.equal(text, ""))
    amount = pc.replace_substring_regex(text, _CURRENCY_AFFIXES, "")
    decimal = f"[{options.decimal}]"
    number = f"^(?:{_integer_pattern(options)}(?:{decimal}[0-9]*)?|{decimal}[0-9]+)$"
    is_number = _mask(pc.match_substring_regex(amount, number)) & ~empty
    plain = pc.replace_substring(_remove_separators(amount, options), options.decimal, ".")
    places_ok = _mask(pc.match_substring_regex(plain, r"^[0-9]*(?:\.[0-9]{0,2}0*)?$"))
    size_ok = _mask(
        pc.match_substring_regex(plain, rf"^[0-9]{{0,{MAX_PRICE_INTEGER_DIGITS}}}(?:\.|$)")
    )
    valid = is_number & places_ok & size_ok

    cents = np.zeros(len(raw), dtype=np.int64)
    if valid.any():
        units = pc.cast(plain.filter(pa.array(valid)), pa.float64()).to_numpy(zero_copy_only=False)
        cents[valid] = np.round(units * 100).astype(np.int64)
    example = f"289{options.decimal}00"
    reason_parts = [
        _reason(
            ~empty & ~is_number,
            f"price '{{}}' is not an amount. Write it like {example}, optionally with "
            f"a currency sign or code such as $ or USD.",
            raw,
        ),
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
    reasons = reason_parts[0].fillna(reason_parts[1]).fillna(reason_parts[2])
    return pd.Series(cents, index=raw.index, dtype="Int64").where(valid), reasons


def _integer_pattern(options: StockFileOptions) -> str:
    """RE2 pattern of the integer part, with optional thousands groups."""
    if options.thousands is None:
        return "[0-9]+"
    return f"(?:[0-9]+|[0-9]{{1,3}}(?:[{options.thousands}][0-9]{{3}})+)"


def _remove_separators(
    text: pa.ChunkedArray | pa.Array, options: StockFileOptions, *, drop_zero_fraction: bool = False
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

    Only the masked rows are formatted, so a clean file costs one empty Series.
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


def _collapse_duplicates(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
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
        "csv.duplicates identical_rows_dropped=%d conflicting_keys=%d",
        len(rows) - int(conflicting.sum()) - len(kept),
        len(conflicting_keys),
    )
    return kept.reset_index(drop=True), rows[conflicting]


__all__ = ["AvailabilityOptions", "ColumnMap", "StockFileOptions", "StockFileSource"]
