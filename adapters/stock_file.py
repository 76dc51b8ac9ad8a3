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

Rules for a CSV file as a whole:

* Blank and whitespace-only lines are skipped, also above the header, with
  every engine.
* A row with fewer or more cells than the header is rejected, because its
  values may sit in the wrong columns.
* A file whose last line has no line break at its end may have been cut while
  the exporter was writing it, so that last row is rejected unless
  ``require_final_newline = false``. The next cycle reads the file again. A
  file cut exactly at a line break looks complete, and only the engine's guard
  against a sudden drop in rows notices it. So does a file cut right after a
  line break inside a quoted cell, because pyarrow and the csv module both
  close an open quote at the end of the file.
* Line numbers come from a second read of the file. A file whose size,
  modification time or inode changes between the reads raises SourceError
  instead of reporting rows at wrong lines.
"""

from __future__ import annotations

import codecs
import csv
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import python_calamine
from pydantic import Field, PositiveInt, field_validator, model_validator

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
# Largest value that csv.field_size_limit accepts everywhere: it is a C long,
# which has 32 bits on Windows.
MAX_FIELD_SIZE_LIMIT = 2**31 - 1
# Bytes read from the end of a file to find its last line break.
TAIL_BYTES = 4096


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
        engine: "pyarrow" is the fast parser. "c" is pandas' own parser, for
            files that pyarrow cannot parse. It pads short rows and cuts long
            ones silently, so the adapter then checks each row's cell count in
            a second pass with Python's csv module, which makes "c" slower.
            "auto" tries pyarrow and falls back to "c" when pyarrow fails.
            Workbooks ignore delimiter, encoding, engine and require_final_newline.
        require_final_newline: reject the last row of a CSV file whose last
            line does not end with a line break, because the file may have been
            cut while it was being written. Set it to false for an exporter
            that never ends its files with a line break.
        currency: ISO 4217 code, such as "USD", that every price must be in. A
            price whose sign or code names another currency is rejected. None
            accepts any one currency sign or code.
    """

    path: Path
    format: FileFormat = "auto"
    sheet: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    header_row: PositiveInt = 1
    engine: Engine = "auto"
    require_final_newline: bool = True
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

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
                changed while it was read, or is not a workbook that has the
                configured sheet.
        """
        if self.options.file_format() == "xlsx":
            return self._read_workbook()
        before = self._file_state()
        found = self._read_header()
        if found is None:
            log.info("csv.read path=%s rows=0 reason=no_header", self.path)
            return SourceResult(rows=empty_rows(), description=self.describe())
        header_line, header = found
        self._check_columns(header)

        cells, engine, scan = self._read_cells(header_line, header, before)
        self._check_unchanged(before)
        lines = _LineIndex(self, before, scan)
        rows, rejections = normalise_cells(
            cells,
            self.options,
            locate=lines.locate,
            cite=lines.cite,
            reasons=self._row_reasons(len(cells), len(header), scan),
            adapter="csv",
            currency=self.options.currency,
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

    def _read_header(self) -> tuple[int, list[str]] | None:
        """Return the physical line of the header and its cells, or None for a blank file."""
        with self._errors_as_source_error(), self._open_text() as handle:
            for start, record, _ in _records(handle, self.options):
                return start, record
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

    def _read_cells(
        self, header_line: int, header: list[str], before: _FileState
    ) -> tuple[pd.DataFrame, str, _RowScan | None]:
        """Read the used columns as text, one row per data row of the file.

        Returns:
            The cells, the name of the parser, and the csv module's scan of the
            rows when one was needed to find rows with the wrong cell count.
        """
        engine = self.options.engine
        if engine in ("auto", "pyarrow"):
            try:
                with self._errors_as_source_error():
                    table, ragged = self._read_with_pyarrow(header_line)
                if not ragged:
                    return _table_frame(table), "pyarrow", None
                # pyarrow skipped the rows with the wrong cell count, so put them back in place.
                scan = self._scan_rows(len(header), before)
                self._check_row_count(len(table) + len(scan.ragged), scan, before)
                return _with_ragged_rows(table, scan, header), "pyarrow", scan
            except _ArrowParseError as error:
                if engine == "pyarrow":
                    raise SourceError(
                        f"is not valid CSV: {error}. Check delimiter and header_row, "
                        f'or set engine = "c".',
                        source=self.describe(),
                    ) from error.__cause__
                log.warning("csv.engine_fallback path=%s engine=c reason=%s", self.path, error)
        with self._errors_as_source_error():
            frame = self._read_with_c_parser(header_line)
        # The C parser pads short rows and cuts long ones without saying so.
        scan = self._scan_rows(len(header), before)
        self._check_row_count(len(frame), scan, before)
        return frame, "c", scan

    def _read_with_pyarrow(self, header_line: int) -> tuple[pa.Table, int]:
        """Read the used columns and count the rows whose cell count differs from the header's."""
        used = value_columns(self.options)
        # Arrow skips a UTF-8 byte order mark itself and decodes UTF-8 natively;
        # other encodings go through Python's codec.
        encoding = (
            "utf8"
            if _codec_name(self.options.encoding).startswith("utf-8")
            else (self.options.encoding)
        )
        # A list, because pyarrow may call the handler from several threads.
        ragged: list[int] = []

        def skip_invalid_row(row: pacsv.InvalidRow) -> str:
            # Whitespace-only lines are skipped silently, as _records skips them.
            if not _is_blank_row(row.text, self.options.delimiter):
                ragged.append(row.actual_columns)
            return "skip"

        try:
            table = pacsv.read_csv(
                self.path,
                read_options=pacsv.ReadOptions(skip_rows=header_line - 1, encoding=encoding),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.options.delimiter,
                    quote_char='"',
                    double_quote=True,
                    newlines_in_values=True,
                    invalid_row_handler=skip_invalid_row,
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=used,
                    column_types={name: pa.string() for name in used},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowKeyError as error:
            raise self._header_changed_error() from error
        except pa.ArrowInvalid as error:
            if "UTF8" in str(error):
                raise self._decode_error() from error
            raise _ArrowParseError(str(error).strip()) from error
        except pa.ArrowException as error:
            raise _ArrowParseError(str(error).strip()) from error
        return table, len(ragged)

    def _read_with_c_parser(self, header_line: int) -> pd.DataFrame:
        used = value_columns(self.options)
        try:
            frame = pd.read_csv(
                self.path,
                sep=self.options.delimiter,
                encoding=_python_encoding(self.options.encoding),
                encoding_errors="strict",
                skiprows=header_line - 1,
                header=0,
                usecols=used,
                dtype=str,
                na_filter=False,
                quotechar='"',
                doublequote=True,
                engine="c",
            )
        except ValueError as error:
            # pandas raises a plain ValueError when a usecols name is not in the header.
            if "Usecols do not match columns" not in str(error):
                raise
            raise self._header_changed_error() from error
        return frame.astype(STRING_DTYPE)[used]

    def _scan_rows(self, width: int, before: _FileState) -> _RowScan:
        """Find each data row's line and the rows that do not have ``width`` cells."""
        scan = _RowScan()
        with self._errors_as_source_error(), self._open_text() as handle:
            records = _records(handle, self.options)
            next(records, None)
            for position, (start, record, _) in enumerate(records):
                scan.lines.append(start)
                if len(record) != width:
                    scan.ragged[position] = record
        self._check_unchanged(before)
        return scan

    def _check_row_count(self, parsed: int, scan: _RowScan, before: _FileState) -> None:
        if parsed == len(scan.lines):
            return
        self._check_unchanged(before)
        raise SourceError(
            f"is not valid CSV: the parser found {parsed} data rows, but Python's csv module "
            f"found {len(scan.lines)}, so rejected rows cannot be given line numbers. Check "
            f"the quotes in the export.",
            source=self.describe(),
        )

    def _row_reasons(self, count: int, width: int, scan: _RowScan | None) -> pd.Series | None:
        """Return reasons for rows with the wrong cell count and for a last row that may be cut."""
        reasons: dict[int, str] = {}
        for position, record in (scan.ragged if scan else {}).items():
            reasons[position] = (
                f"the row has {len(record)} cells, but the header has {width}, so its values "
                f"may be in the wrong columns. Check the delimiters and quotes of this row."
            )
        if count and self.options.require_final_newline and self._last_line_unterminated():
            last = count - 1
            cut = (
                "the file's last line does not end with a line break, so the file may have "
                "been cut while it was being written. If the exporter is still writing it, "
                "the next cycle reads it complete. If the exporter never ends its files with "
                "a line break, set require_final_newline = false."
            )
            reasons[last] = f"{cut} {reasons[last]}" if last in reasons else cut
        if not reasons:
            return None

        series = pd.Series(pd.NA, index=pd.RangeIndex(count), dtype=STRING_DTYPE)
        series.iloc[list(reasons)] = list(reasons.values())
        return series

    def _last_line_unterminated(self) -> bool:
        """Return whether the file's last line has text and no line break after it."""
        with self._errors_as_source_error(), self.path.open("rb") as handle:
            head = handle.read(4)
            size = handle.seek(0, os.SEEK_END)
            # A multiple of 4 keeps UTF-16 and UTF-32 decoding in step.
            offset = max(0, size - TAIL_BYTES) // 4 * 4
            handle.seek(offset)
            tail = handle.read()
        decoder = codecs.getincrementaldecoder(_python_encoding(self.options.encoding))("replace")
        if offset:
            # The head lets a UTF-16 or UTF-32 decoder read the byte order mark.
            decoder.decode(head)
        text = decoder.decode(tail, final=True)
        last_break = max(text.rfind("\n"), text.rfind("\r"))
        return bool(text[last_break + 1 :].strip())

    def _file_state(self) -> _FileState:
        with self._errors_as_source_error():
            status = self.path.stat()
        return (status.st_ino, status.st_size, status.st_mtime_ns)

    def _check_unchanged(self, before: _FileState) -> None:
        """Raise SourceError when the file is not the one that the read started with."""
        if self._file_state() != before:
            raise SourceError(
                "changed while it was read, so its rows and line numbers cannot be matched. "
                "The exporter is probably still writing or replacing it. The next cycle "
                "reads it again.",
                source=self.describe(),
            )

    def _header_changed_error(self) -> SourceError:
        return SourceError(
            "lost a configured column between two reads of its header, so the exporter "
            "is probably rewriting it. The next cycle reads it again. If this repeats, "
            "check the names under [columns].",
            source=self.describe(),
        )

    @contextmanager
    def _open_text(self) -> Iterator[IO[str]]:
        # newline="" lets the csv module see line breaks inside quoted cells.
        with self.path.open(
            encoding=_python_encoding(self.options.encoding), newline="", errors="strict"
        ) as handle:
            _allow_fields_up_to(os.fstat(handle.fileno()).st_size)
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
            currency=self.options.currency,
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


# Inode, size in bytes and modification time in nanoseconds of a file.
_FileState = tuple[int, int, int]


class _RowScan:
    """Data rows as a full read with the csv module found them.

    Attributes:
        lines: the physical line on which each data row starts.
        ragged: the cells of each row whose cell count differs from the
            header's, by 0-based data row position.
    """

    def __init__(self) -> None:
        self.lines: list[int] = []
        self.ragged: dict[int, list[str]] = {}


class _LineIndex:
    """Physical line numbers of data rows, found by rereading the file when a row is rejected."""

    def __init__(
        self, source: StockFileSource, before: _FileState, scan: _RowScan | None = None
    ) -> None:
        self._source = source
        self._before = before
        self._lines: list[int] = scan.lines if scan else []

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
            # Line numbers from another version of the file would point at wrong rows.
            self._source._check_unchanged(self._before)
        return self._lines


class _ArrowParseError(Exception):
    """pyarrow could not split the file into rows; the C parser may still read it."""


def _records(handle: IO[str], options: StockFileOptions) -> Iterator[tuple[int, list[str], int]]:
    """Yield (first line, cells, last line) for each non-blank record from the header on.

    Blank and whitespace-only lines are skipped, as pandas' parser skips them.

    Raises:
        csv.Error: when a record is not valid CSV; the message names its last line.
    """
    for _ in range(options.header_row - 1):
        handle.readline()
    offset = options.header_row - 1
    reader = csv.reader(handle, delimiter=options.delimiter, quotechar='"', doublequote=True)
    end = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise csv.Error(f"line {offset + reader.line_num}: {error}") from error
        start = offset + end + 1
        end = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        yield start, record, offset + end


def _is_blank_row(text: str, delimiter: str) -> bool:
    """Return whether a row that pyarrow rejected is one that ``_records`` skips as blank."""
    if not text.strip():
        return True
    try:
        record = next(csv.reader([text], delimiter=delimiter, quotechar='"'), [])
    except csv.Error:
        return False
    return len(record) <= 1 and not "".join(record).strip()


def _table_frame(table: pa.Table) -> pd.DataFrame:
    return pd.DataFrame(
        {
            name: pd.Series(pd.arrays.ArrowStringArray(table.column(name)))
            for name in table.column_names
        }
    )


def _with_ragged_rows(table: pa.Table, scan: _RowScan, header: list[str]) -> pd.DataFrame:
    """Insert the rows that pyarrow skipped at their positions, with their cells from the scan."""
    ragged = np.zeros(len(scan.lines), dtype=bool)
    ragged[list(scan.ragged)] = True
    # Row i of the result is table row (number of rows before i that are not ragged).
    take = pa.array(np.cumsum(~ragged) - 1, mask=ragged)
    frame = _table_frame(table.take(take))

    positions = list(scan.ragged)
    records = list(scan.ragged.values())
    for name in frame.columns:
        index = header.index(name)
        frame.iloc[positions, frame.columns.get_loc(name)] = [
            record[index] if index < len(record) else "" for record in records
        ]
    return frame


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


def _allow_fields_up_to(size: int) -> None:
    """Raise the csv module's cell size limit to ``size`` characters, never lowering it.

    The default limit of 131072 characters rejects a large cell in a column
    that the adapter does not even use. No cell is longer than the file's size
    in bytes, so that size bounds the limit. The limit is global to the
    process, so it is only ever raised, which keeps concurrent readers safe.
    """
    needed = min(max(size, 1), MAX_FIELD_SIZE_LIMIT)
    if csv.field_size_limit() < needed:
        csv.field_size_limit(needed)


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
