"""Folder order sink, selected with ``adapter = "folder"``: one file per order.

Each order becomes ``<order id>.json`` (or ``.csv``) in ``path``. The name is
the order id with every character outside ``A-Z a-z 0-9 _ - .`` replaced by
``_``, plus a short hash of the id when anything was replaced, so two ids
never share a file. A new version of an order replaces its file, so a repeated
delivery leaves one file per order.

Files are written atomically: a temporary file in the same folder (mode 0600,
name starting with ``.``), fsync, rename over the final name, fsync of the
folder. A reader never sees half an order, and a crash leaves at most a
temporary file, which the next delivery of that order replaces.

JSON layout: ``{"order": {...}, "prescriptions": [...]}``, with the order as
``GET /orders/{id}`` returns it; ``prescriptions`` is present only with
``prescriptions = true``.

CSV layout: ``<id>.csv`` has one row per order line. The order's fields
repeat on each row (``order_id``, ``status``, ``created_at``, ``updated_at``,
``currency``, ``total``, ``customer_name``, ``customer_email``,
``has_prescription``, ``payment_method``, ``payment_status``,
``payment_amount``), followed by the line's ``line_number``, ``frame_id``,
``sku``, ``upc``, ``quantity`` and ``unit_price``. An order without lines
gets one row with empty line fields. With ``prescriptions = true``,
``<id>.rx.csv`` holds one row per prescription: ``prescription_id``,
``order_id``, ``created_at``, ``od_sphere``, ``od_cylinder``, ``od_axis``,
``od_add``, the same four for ``os``, ``pd_binocular``, ``pd_od``, ``pd_os``,
``segment_height_od`` and ``segment_height_os``. It is written before the
order file, so an order file always has its prescriptions beside it.

Options:
    path: the folder; relative paths resolve against the config file's folder.
        Created with mode 0700 when missing.
    format: ``"json"`` (default) or ``"csv"``.
    prescriptions: fetch and write prescriptions (scope ``prescriptions:read``);
        default false.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from adapters.base import AdapterOptions, DeliveryResult, OrderDelivery, OrderSink, SourceContext
from sync.errors import SinkError

log = logging.getLogger("eyekiosk_sync.adapters.folder")

FILE_MODE = 0o600
FOLDER_MODE = 0o700
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_STEM = 120

ORDER_COLUMNS = (
    "order_id", "status", "created_at", "updated_at", "currency", "total", "customer_name",
    "customer_email", "has_prescription", "payment_method", "payment_status", "payment_amount",
    "line_number", "frame_id", "sku", "upc", "quantity", "unit_price",
)  # fmt: skip
PRESCRIPTION_COLUMNS = (
    "prescription_id", "order_id", "created_at",
    "od_sphere", "od_cylinder", "od_axis", "od_add",
    "os_sphere", "os_cylinder", "os_axis", "os_add",
    "pd_binocular", "pd_od", "pd_os", "segment_height_od", "segment_height_os",
)  # fmt: skip


class FolderSinkOptions(AdapterOptions):
    """Options of the folder sink; see the module docstring."""

    path: Path
    format: Literal["json", "csv"] = "json"
    prescriptions: bool = False


def file_stem(order_id: str) -> str:
    """Return the file name stem of an order: the id made safe for any file system."""
    stem = _UNSAFE.sub("_", order_id)[:MAX_STEM]
    if stem != order_id or stem in ("", ".", "..") or stem.startswith(TEMP_PREFIX):
        digest = hashlib.sha256(order_id.encode("utf-8")).hexdigest()[:10]
        stem = f"{stem.lstrip('.')}_{digest}"
    return stem


class FolderOrderSink(OrderSink[FolderSinkOptions]):
    """Writes each order to its own file in a folder; see the module docstring."""

    options_model = FolderSinkOptions

    def __init__(self, options: FolderSinkOptions, *, context: SourceContext) -> None:
        super().__init__(options, context=context)
        path = options.path.expanduser()
        self.folder = path if path.is_absolute() else context.config_dir / path

    def describe(self) -> str:
        return f"folder {self.folder} ({self.options.format})"

    def deliver(self, deliveries: Sequence[OrderDelivery]) -> list[DeliveryResult]:
        """Write one file (two with CSV prescriptions) per order.

        Raises:
            SinkError: the folder cannot be created or is not a folder.
        """
        self._ensure_folder()
        results = []
        for delivery in deliveries:
            try:
                self._write_order(delivery)
            except OSError as error:
                reason = error.strerror or type(error).__name__
                log.error("folder.write_failed order_id=%s error=%s", delivery.order_id, reason)
                results.append(
                    DeliveryResult(delivery.order_id, False, f"cannot write its file: {reason}")
                )
                continue
            results.append(DeliveryResult(delivery.order_id, True))
        return results

    def _ensure_folder(self) -> None:
        try:
            self.folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        except OSError as error:
            raise SinkError(
                f"cannot create the folder: {error.strerror}; check the path and permissions",
                sink=self.describe(),
            ) from error
        if not self.folder.is_dir():
            raise SinkError("the path exists but is not a folder", sink=self.describe())

    def _write_order(self, delivery: OrderDelivery) -> None:
        stem = file_stem(delivery.order_id)
        if self.options.format == "json":
            body: dict[str, Any] = {"order": delivery.order}
            if self.options.prescriptions:
                body["prescriptions"] = delivery.prescriptions
            text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
            write_atomically(self.folder / f"{stem}.json", text.encode("utf-8"))
            return

        if self.options.prescriptions:
            rx = _csv_text(PRESCRIPTION_COLUMNS, _prescription_rows(delivery.prescriptions))
            write_atomically(self.folder / f"{stem}.rx.csv", rx.encode("utf-8"))
        text = _csv_text(ORDER_COLUMNS, _order_rows(delivery.order))
        write_atomically(self.folder / f"{stem}.csv", text.encode("utf-8"))


def write_atomically(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` so that readers see the old or the new file, never part.

    Raises:
        OSError: the temporary file could not be written, synced or renamed; it is removed.
    """
    handle, temp_name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    try:
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), FILE_MODE)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk.
    descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _csv_text(columns: Sequence[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _order_rows(order: dict[str, Any]) -> list[dict[str, Any]]:
    customer = order.get("customer") or {}
    payment = order.get("payment") or {}
    head = {
        "order_id": order.get("id"),
        "status": order.get("status"),
        "created_at": order.get("created_at"),
        "updated_at": order.get("updated_at"),
        "currency": order.get("currency"),
        "total": order.get("total"),
        "customer_name": customer.get("name"),
        "customer_email": customer.get("email"),
        "has_prescription": order.get("has_prescription"),
        "payment_method": payment.get("method"),
        "payment_status": payment.get("status"),
        "payment_amount": payment.get("amount"),
    }
    items = order.get("items") or [{}]
    rows = []
    for number, item in enumerate(items, start=1):
        row = dict(head)
        if item:
            row.update(
                line_number=number,
                frame_id=item.get("frame_id"),
                sku=item.get("sku"),
                upc=item.get("upc"),
                quantity=item.get("quantity"),
                unit_price=item.get("unit_price"),
            )
        rows.append({name: _text(value) for name, value in row.items()})
    return rows


def _prescription_rows(prescriptions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for item in prescriptions:
        row: dict[str, Any] = {
            "prescription_id": item.get("id"),
            "order_id": item.get("order_id"),
            "created_at": item.get("created_at"),
        }
        for eye in ("od", "os"):
            values = item.get(eye) or {}
            for name in ("sphere", "cylinder", "axis", "add"):
                row[f"{eye}_{name}"] = values.get(name)
        pd_values = item.get("pd") or {}
        for name in ("binocular", "od", "os"):
            row[f"pd_{name}"] = pd_values.get(name)
        heights = item.get("segment_height") or {}
        row["segment_height_od"] = heights.get("od")
        row["segment_height_os"] = heights.get("os")
        rows.append({name: _text(value) for name, value in row.items()})
    return rows


__all__ = ["FolderOrderSink", "FolderSinkOptions", "file_stem", "write_atomically"]
