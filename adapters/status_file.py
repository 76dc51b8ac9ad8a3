"""CSV order status source, selected with ``adapter = "status-csv"``.

Reads a CSV file, written by the practice's system, with one order id and one
fulfilment status per row. Cells are trimmed. A status is looked up in
``status_map`` first (keys compared case-insensitively), then taken as one of
Eyekiosk's statuses (``pending``, ``in_progress``, ``completed``, ``shipped``,
``cancelled``, case-insensitive).

Rows left out:
* an empty status cell: the order has no status to send yet; skipped silently;
* an empty order id, or a status that is neither mapped nor an Eyekiosk
  status: a rejection at ``<file name>:<line>``;
* an order id on several rows with different statuses: every row is rejected,
  because the file does not say which one is right. Rows with the same status
  are kept once.

Options:
    path: the CSV file; relative paths resolve against the config file's folder.
    columns: header names, ``{order_id = "order_id", status = "status"}`` by default.
    status_map: the practice's status words mapped to Eyekiosk statuses,
        e.g. ``{"In lab" = "in_progress", "Sent" = "shipped"}``.
    delimiter: one character; default ``,``.
    encoding: default ``utf-8-sig`` (UTF-8, with or without a byte order mark).
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from pathlib import Path

import pandas as pd
from pydantic import Field, field_validator

from adapters.base import (
    ORDER_ID,
    STATUS,
    AdapterOptions,
    Rejection,
    SourceContext,
    StatusResult,
    StatusSource,
)
from sync.errors import SourceError
from sync.models import ORDER_STATUSES

log = logging.getLogger("eyekiosk_sync.adapters.status-csv")


class StatusColumns(AdapterOptions):
    """Header names of the order id and status columns."""

    order_id: str = ORDER_ID
    status: str = STATUS


class StatusFileOptions(AdapterOptions):
    """Options of the CSV status source; see the module docstring."""

    path: Path
    columns: StatusColumns = Field(default_factory=StatusColumns)
    status_map: dict[str, str] = Field(default_factory=dict)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"

    @field_validator("status_map")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted({target for target in value.values() if target not in ORDER_STATUSES})
        if unknown:
            raise ValueError(
                f"status_map maps to {', '.join(unknown)}, which are not Eyekiosk statuses "
                f"({', '.join(ORDER_STATUSES)})"
            )
        return {word.strip().casefold(): target for word, target in value.items()}


class StatusFileSource(StatusSource[StatusFileOptions]):
    """Reads order statuses from a CSV file; see the module docstring."""

    options_model = StatusFileOptions

    def __init__(self, options: StatusFileOptions, *, context: SourceContext) -> None:
        super().__init__(options, context=context)
        path = options.path.expanduser()
        self.path = path if path.is_absolute() else context.config_dir / path

    def describe(self) -> str:
        return f"status file {self.path}"

    def read_statuses(self) -> StatusResult:
        """Read every row of the file.

        Raises:
            SourceError: the file cannot be opened or decoded, or lacks a named column.
        """
        columns = self.options.columns
        rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
        rejections: list[Rejection] = []
        try:
            with self.path.open(newline="", encoding=self.options.encoding) as handle:
                reader = csv.DictReader(handle, delimiter=self.options.delimiter)
                missing = [
                    name
                    for name in (columns.order_id, columns.status)
                    if name not in (reader.fieldnames or [])
                ]
                if missing:
                    raise SourceError(
                        f"missing column(s) {', '.join(missing)}; set [columns] to the "
                        "header names the file uses",
                        source=self.describe(),
                    )
                for record in reader:
                    # line_num is the physical line where the record ended.
                    self._read_row(record, reader.line_num, rows, rejections)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise SourceError(f"cannot read the file: {reason}", source=self.describe()) from error

        order_ids, statuses = self._resolve_duplicates(rows, rejections)
        frame = pd.DataFrame(
            {
                ORDER_ID: pd.Series(order_ids, dtype="string"),
                STATUS: pd.Series(statuses, dtype="string"),
            }
        )
        if rejections:
            log.warning("status_file.rejected file=%s rows=%d", self.path, len(rejections))
        return StatusResult(rows=frame, rejections=rejections, description=self.describe())

    def _read_row(
        self,
        record: dict[str | None, str | None],
        line: int,
        rows: dict[str, list[tuple[int, str]]],
        rejections: list[Rejection],
    ) -> None:
        columns = self.options.columns
        location = f"{self.path.name}:{line}"
        order_id = (record.get(columns.order_id) or "").strip()
        word = (record.get(columns.status) or "").strip()
        if not word:
            return
        if not order_id:
            rejections.append(Rejection(location, f"empty {columns.order_id}"))
            return
        status = self.options.status_map.get(word.casefold(), word.casefold())
        if status not in ORDER_STATUSES:
            rejections.append(
                Rejection(
                    location,
                    f"unknown status {word!r}; map it with status_map or use one of "
                    f"{', '.join(ORDER_STATUSES)}",
                    key=order_id,
                )
            )
            return
        rows[order_id].append((line, status))

    def _resolve_duplicates(
        self, rows: dict[str, list[tuple[int, str]]], rejections: list[Rejection]
    ) -> tuple[list[str], list[str]]:
        order_ids: list[str] = []
        statuses: list[str] = []
        for order_id, found in rows.items():
            distinct = sorted({status for _, status in found})
            if len(distinct) == 1:
                order_ids.append(order_id)
                statuses.append(distinct[0])
                continue
            for line, _status in found:
                rejections.append(
                    Rejection(
                        f"{self.path.name}:{line}",
                        f"order {order_id} has several statuses ({', '.join(distinct)})",
                        key=order_id,
                    )
                )
        return order_ids, statuses


__all__ = ["StatusColumns", "StatusFileOptions", "StatusFileSource"]
