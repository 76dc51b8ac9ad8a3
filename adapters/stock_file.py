"""Stock-export file adapter for CSV, TSV and XLSX, selected with ``adapter = "csv"``.

Reads a stock export written by practice software, a shop or a spreadsheet
with configuration only: the options name the columns, the delimiter, the
encoding, the sheet and the number format. CSV cells are read as text, so keys
keep their leading zeros, and are then converted column-wise. The alias
``xlsx`` selects the same adapter, and ``format`` or the file's extension
decides how the file is read.

XLSX workbooks are read with python-calamine. A spreadsheet stores numbers as
64-bit floats, which hold every whole number of up to 15 digits exactly, so a
barcode or quantity stored as a number is written back as its digits
(8052892140274.0 gives ``8052892140274``, 2.0 gives ``2``). A key cell whose
number has more digits, or a barcode with a decimal part, is rejected because
its digits may not be the ones that were typed. A rejected row of a workbook is
reported at ``<file name>:<sheet>!row <row number>``.

Values are read with ``adapters.normalise.normalise_cells``, whose module
docstring lists the rules for keys, quantities, prices and duplicate keys. A
rejected row is reported at ``<file name>:<line>``, where the line is the
physical line on which the row starts, counting the header, blank lines and
line breaks inside quoted cells.
"""

from __future__ import annotations

import codecs
import csv
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import python_calamine
from pydantic import PositiveInt, field_validator, model_validator

from adapters.base import SourceResult, StockSource, empty_rows
from adapters.normalise import (
    MAX_EXACT_FLOAT_DIGITS,
    AvailabilityOptions,
    ColumnMap,
    ValueOptions,
    join_limited,
    normalise_cells,
    scalar_as_text,
    value_columns,
)
from sync.errors import SourceError
from sync.keys import STRING_DTYPE

log = logging.getLogger("eyekiosk_sync.adapters.csv")
xlsx_log = logging.getLogger("eyekiosk_sync.adapters.xlsx")

Engine = Literal["auto", "pyarrow", "c"]
FileFormat = Literal["auto", "csv", "xlsx"]
# Extensions that format = "auto" reads as a workbook; every other file is CSV.
XLSX_SUFFIXES = (".xlsx", ".xlsm")


class StockFileOptions(ValueOptions):
    """Options of the ``csv`` adapter.

    The value options (columns, decimal, key_type and the others) are those of
    ``adapters.normalise.ValueOptions``.

    Attributes:
        path: the export file; a relative path is resolved against the folder of
            the configuration file.
        delimiter: one character between cells; ``"\\t"`` reads TSV.
        encoding: Python codec name. With ``utf-8`` a byte order mark is skipped.
        header_row: 1-based line number of the header (the row number in a
            workbook). Lines above it are skipped and must not contain quoted
            line breaks.
        format: "csv", "xlsx", or "auto" to read ``.xlsx`` and ``.xlsm`` files
            as workbooks and every other file as CSV.
        sheet: with format "xlsx", the name of the sheet to read; None reads
            the first sheet.
        engine: "pyarrow" is the fast parser. "c" is pandas' own parser, which
            also reads files with ragged rows or whitespace-only lines. "auto"
            tries pyarrow and falls back to "c" when pyarrow cannot parse the file.
            Workbooks ignore delimiter, encoding and engine.
    """

    path: Path
    format: FileFormat = "auto"
    sheet: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    header_row: PositiveInt = 1
    engine: Engine = "auto"

    def file_format(self) -> Literal["csv", "xlsx"]:
        """Return the format that ``format`` sets or the extension of ``path`` implies."""
        if self.format != "auto":
            return self.format
        return "xlsx" if self.path.suffix.lower() in XLSX_SUFFIXES else "csv"

    @model_validator(mode="after")
    def _check_sheet(self) -> StockFileOptions:
        if self.sheet is not None and self.file_format() == "csv":
            raise ValueError(
                f"sheet applies to workbooks only, but {self.path.name!r} is read as CSV. "
                f'Remove sheet, or set format = "xlsx"'
            )
        return self

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


class StockFileSource(StockSource[StockFileOptions]):
    """Stock rows from a CSV, TSV or XLSX export file (aliases ``csv`` and ``xlsx``)."""

    options_model = StockFileOptions

    @property
    def path(self) -> Path:
        """The export file, resolved against the configuration folder."""
        return (self.context.config_dir / self.options.path).resolve()

    def describe(self) -> str:
        """Describe the source as ``csv file <absolute path>`` or ``xlsx file <absolute path>``."""
        return f"{self.options.file_format()} file {self.path}"

    def read(self) -> SourceResult:
        """Read the export file once.

        Returns:
            One row per key, the rejected rows in file order, and ``total_rows``,
            the number of data rows in the file. A file with no header or no data
            rows gives zero rows, and the engine's guard decides what that means.

        Raises:
            SourceError: when the file is missing or unreadable, is not in the
                configured encoding, lacks a configured column, is not valid CSV,
                or is not a workbook that has the configured sheet.
        """
        if self.options.file_format() == "xlsx":
            return self._read_workbook()
        header = self._read_header()
        if header is None:
            log.info("csv.read path=%s rows=0 reason=no_header", self.path)
            return SourceResult(rows=empty_rows(), description=self.describe())
        self._check_columns(header)

        cells, engine = self._read_cells()
        lines = _LineIndex(self)
        rows, rejections = normalise_cells(
            cells, self.options, locate=lines.locate, cite=lines.cite, adapter="csv"
        )
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

    def _check_columns(
        self,
        header: list[str],
        where: str | None = None,
        settings: str = "delimiter, encoding and header_row",
    ) -> None:
        used = value_columns(self.options)
        missing = [name for name in used if name not in header]
        if missing:
            found = ", ".join(repr(name) for name in header)
            where = where or f"line {self.options.header_row}"
            raise SourceError(
                f"column {missing[0]!r} is not in the header on {where}. "
                f"The columns found are {found}. Fix the name under [columns], "
                f"or check {settings}.",
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
        used = value_columns(self.options)
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
        used = value_columns(self.options)
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

    # Workbooks -------------------------------------------------------------

    def _read_workbook(self) -> SourceResult:
        sheet, grid = self._load_sheet()
        header_index = self.options.header_row - 1
        header = (
            [_header_text(cell) for cell in grid[header_index]] if len(grid) > header_index else []
        )
        if not any(header):
            xlsx_log.info("xlsx.read path=%s sheet=%s rows=0 reason=no_header", self.path, sheet)
            return SourceResult(rows=empty_rows(), description=self.describe())
        where = f"row {self.options.header_row} of sheet {sheet!r}"
        self._check_columns(header, where, settings="sheet and header_row")

        # Data rows: every row below the header with at least one non-empty cell.
        used = value_columns(self.options)
        indices = [header.index(name) for name in used]
        data: list[list[Any]] = []
        row_numbers: list[int] = []
        for number, row in enumerate(grid[header_index + 1 :], start=header_index + 2):
            if row.count("") < len(row):
                data.append(row)
                row_numbers.append(number)
        columns = {
            name: [row[index] if index < len(row) else "" for row in data]
            for name, index in zip(used, indices, strict=True)
        }
        cells, reasons = _workbook_cells(columns, self.options)

        prefix = f"{self.path.name}:{sheet}!row "
        rows, rejections = normalise_cells(
            cells,
            self.options,
            locate=lambda positions: [f"{prefix}{row_numbers[p]}" for p in positions],
            cite=lambda positions: "rows " + join_limited([str(row_numbers[p]) for p in positions]),
            reasons=reasons,
            adapter="xlsx",
        )
        xlsx_log.info(
            "xlsx.read path=%s sheet=%s total=%d rows=%d rejected=%d",
            self.path,
            sheet,
            len(cells),
            len(rows),
            len(rejections),
        )
        return SourceResult(
            rows=rows, rejections=rejections, description=self.describe(), total_rows=len(cells)
        )

    def _load_sheet(self) -> tuple[str, list[list[Any]]]:
        """Return the sheet's name and its cells from A1 on, one list per row."""
        source = self.describe()
        if not self.path.is_file():
            raise SourceError(
                f"file not found. Check path. A relative path is resolved against "
                f"{self.context.config_dir}.",
                source=source,
            )
        try:
            workbook = python_calamine.CalamineWorkbook.from_path(str(self.path))
            name = self.options.sheet
            if name is None:
                if not workbook.sheet_names:
                    return "", []
                name = workbook.sheet_names[0]
            if name not in workbook.sheet_names:
                found = ", ".join(repr(sheet) for sheet in workbook.sheet_names)
                raise SourceError(
                    f"has no sheet {name!r}. The sheets are {found}. Fix sheet.", source=source
                )
            grid = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
        except python_calamine.PasswordError as error:
            raise SourceError(
                "is protected with a password. Export it again without a password.",
                source=source,
            ) from error
        except python_calamine.CalamineError as error:
            raise SourceError(
                f"is not a readable XLSX workbook: {error}. Check path and format.",
                source=source,
            ) from error
        except OSError as error:
            raise SourceError(
                f"cannot be read: {error.strerror or error}. Check that the path is a "
                f"file that the service user may read.",
                source=source,
            ) from error
        return name, grid

    # Locations -------------------------------------------------------------

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


class _LineIndex:
    """Physical line numbers of data rows, found by rereading the file when a row is rejected."""

    def __init__(self, source: StockFileSource) -> None:
        self._source = source
        self._lines: list[int] = []

    def locate(self, positions: Sequence[int]) -> list[str]:
        lines = self._lines_until(max(positions))
        name = self._source.path.name
        # NOTE: a position past the rows that the csv module found happens only
        # when it splits the file differently from the parser that read it,
        # which valid CSV does not cause.
        return [
            f"{name}:{lines[p]}" if p < len(lines) else f"{name}: data row {p + 1}"
            for p in positions
        ]

    def cite(self, positions: Sequence[int]) -> str:
        lines = self._lines_until(max(positions))
        listed = [str(lines[p]) if p < len(lines) else "?" for p in positions]
        return f"lines {join_limited(listed)}"

    def _lines_until(self, last: int) -> list[int]:
        if len(self._lines) <= last:
            self._lines = self._source._record_lines(last)
        return self._lines


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


def _header_text(cell: object) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return "" if cell is None else str(cell)


def _workbook_cells(
    columns: dict[str, list[object]], options: StockFileOptions
) -> tuple[pd.DataFrame, pd.Series]:
    """Turn workbook cell values into text cells and reasons for key numbers that lost digits.

    A barcode that lost digits is written in scientific notation, which
    ``normalise_cells`` rejects with its own reason, so reasons are given here
    only for SKU and composite keys, whose text is otherwise accepted.
    """
    length = len(next(iter(columns.values()), []))
    reasons = pd.Series(pd.NA, index=pd.RangeIndex(length), dtype=STRING_DTYPE)
    key_columns = set(options.columns.key_columns())
    texts = {}
    for name, values in columns.items():
        text, inexact = _workbook_text(values, price=name == options.columns.price)
        texts[name] = text
        if name in key_columns and options.key_type != "barcode" and inexact.any():
            positions = np.flatnonzero(inexact & reasons.isna().to_numpy())
            reasons.iloc[positions] = [
                f"key column {name!r} holds the number {text.iloc[p]}, which has more than "
                f"{MAX_EXACT_FLOAT_DIGITS} digits, so the spreadsheet has rounded it. Format "
                f"the column as text and enter the key again."
                for p in positions
            ]
    return pd.DataFrame(texts), reasons


def _workbook_text(values: list[object], *, price: bool) -> tuple[pd.Series, np.ndarray]:
    """Return the cells as text and a mask of whole numbers too large to be exact.

    Whole numbers of up to 15 digits become their digits. Larger ones become
    15 significant digits in scientific notation, which is what the spreadsheet
    still holds. In a price column, a float within a millionth of a cent of a
    two-place amount (such as 0.30000000000000004) becomes that amount.
    """
    count = len(values)
    is_text = np.fromiter((type(value) is str for value in values), dtype=bool, count=count)
    is_float = np.fromiter((type(value) is float for value in values), dtype=bool, count=count)
    text = np.empty(count, dtype=object)
    text[is_text] = [value for value, keep in zip(values, is_text, strict=True) if keep]
    inexact = np.zeros(count, dtype=bool)

    if is_float.any():
        positions = np.flatnonzero(is_float)
        numbers = np.array([values[p] for p in positions], dtype=np.float64)
        finite = np.isfinite(numbers)
        whole = finite & (np.floor(numbers) == numbers)
        exact = whole & (np.abs(numbers) < 10.0**MAX_EXACT_FLOAT_DIGITS)
        written = np.empty(len(numbers), dtype=object)
        if exact.any():
            written[exact] = numbers[exact].astype(np.int64).astype(str)
        for index in np.flatnonzero(~exact):
            number = float(numbers[index])
            if whole[index]:
                written[index] = f"{number:.{MAX_EXACT_FLOAT_DIGITS}g}"
            elif price and finite[index] and abs(number * 100 - round(number * 100)) < 1e-6:
                written[index] = f"{number:.2f}"
            else:
                written[index] = repr(number)
        text[positions] = written
        inexact[positions] = whole & ~exact

    for index in np.flatnonzero(~is_text & ~is_float):
        text[index] = scalar_as_text(values[index])
    return pd.Series(text, dtype=STRING_DTYPE), inexact


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


__all__ = ["AvailabilityOptions", "ColumnMap", "StockFileOptions", "StockFileSource"]
