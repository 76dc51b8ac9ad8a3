"""JSON Lines stock adapter, selected with ``adapter = "jsonlines"``.

Reads a file with one JSON object per line, such as::

    {"sku": "FR-00001", "quantity": 2, "price": "288.99"}
    {"sku": "FR-00002", "quantity": 0}

The adapter only reads the file and reports where each row is. Turning the values
into keys, quantities and prices, rejecting bad rows and handling duplicate keys
is left to ``adapters.normalise.normalise_cells``, so every value option of the
shipped adapters (``key_type``, ``decimal``, ``empty_quantity`` and the others)
works here too. A rejected row is reported at ``<file name>:<line>``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from adapters.base import SourceResult, StockSource
from adapters.normalise import (
    ColumnMap,
    ValueOptions,
    cells_as_text,
    normalise_cells,
    value_columns,
)
from sync.errors import SourceError

log = logging.getLogger("eyekiosk_sync.adapters.jsonlines")


class JsonLinesOptions(ValueOptions):
    """Options of the ``jsonlines`` adapter.

    Attributes:
        path: the JSON Lines file; a relative path is resolved against the folder
            of the configuration file.
        encoding: Python codec name of the file.
        columns: the object fields that hold the key, quantity and price.
    """

    path: Path
    encoding: str = "utf-8"
    columns: ColumnMap = ColumnMap(key="sku", quantity="quantity", price="price")


class JsonLinesSource(StockSource[JsonLinesOptions]):
    """Stock rows from a JSON Lines file (alias ``jsonlines``)."""

    options_model = JsonLinesOptions

    @property
    def path(self) -> Path:
        """The file, resolved against the configuration folder."""
        return (self.context.config_dir / self.options.path).resolve()

    def describe(self) -> str:
        """Describe the source as ``jsonlines file <absolute path>``."""
        return f"jsonlines file {self.path}"

    def read(self) -> SourceResult:
        """Read the file once.

        Returns:
            One row per key, the rejected lines in file order, and ``total_rows``,
            the number of non-blank lines.

        Raises:
            SourceError: when the file is missing, unreadable or not in the encoding.
        """
        try:
            text = self.path.read_text(encoding=self.options.encoding)
        except FileNotFoundError as error:
            raise SourceError("file not found. Check path.", source=self.describe()) from error
        except (OSError, UnicodeDecodeError) as error:
            raise SourceError(f"cannot be read: {error}", source=self.describe()) from error

        # One record per non-blank line. A line that is not a JSON object becomes an
        # empty record with a reason, so it is rejected in file order.
        records: list[dict[str, object]] = []
        line_numbers: list[int] = []
        reasons: list[str | None] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            record, reason = _parse_line(line)
            records.append(record)
            line_numbers.append(number)
            reasons.append(reason)

        names = value_columns(self.options)
        frame = pd.DataFrame.from_records(records, columns=names) if records else None
        cells = cells_as_text(frame) if frame is not None else pd.DataFrame(columns=names)
        rows, rejections = normalise_cells(
            cells,
            self.options,
            locate=lambda positions: [f"{self.path.name}:{line_numbers[p]}" for p in positions],
            reasons=pd.Series(reasons, dtype="string"),
            adapter="jsonlines",
        )
        log.info(
            "jsonlines.read path=%s total=%d rows=%d rejected=%d",
            self.path,
            len(cells),
            len(rows),
            len(rejections),
        )
        return SourceResult(
            rows=rows, rejections=rejections, description=self.describe(), total_rows=len(cells)
        )


def _parse_line(line: str) -> tuple[dict[str, object], str | None]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        return {}, f"line is not valid JSON: {error.msg}. Fix the line or remove it."
    if not isinstance(value, dict):
        return {}, "line is not a JSON object. Write one object per line."
    return value, None
