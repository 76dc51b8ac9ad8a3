"""The adapter contracts, run over every shipped adapter and the example plugin.

Each stock source gets one case class in ``STOCK_CASES``, and each order sink
one in ``SINK_CASES``. Adding an adapter to the suite is one more entry there.
Cases that need their own servers and fixtures run the same contracts in
their adapter's test module: the SFTP and Google Merchant feeds in
tests/adapters/test_feed_sftp.py and test_supplier_feed.py, and the
sql-orders sink in test_erp_orders.py.
No case is skipped: an adapter whose module or dependency is missing fails the
suite.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from adapters.base import OrderSink, StockSource
from adapters.erp_database import ErpDatabaseSource
from adapters.order_folder import FolderOrderSink
from adapters.order_http import HttpOrderSink
from adapters.stock_file import StockFileSource
from adapters.supplier_feed import SupplierFeedSource
from adapters.testing import (
    CONTRACT_SECRET_ENV,
    OrderSinkCase,
    OrderSinkContract,
    StockRow,
    StockSourceCase,
    StockSourceContract,
    build_sink,
    build_source,
)
from tests.adapters.feed_servers import FeedHttpServer, Route

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "eyekiosk-sync-example-adapter"


def _price_text(row: StockRow) -> str:
    if row.price_cents is None:
        return ""
    return f"{row.price_cents // 100}.{row.price_cents % 100:02d}"


def _csv_text(lines: Sequence[Sequence[str]]) -> str:
    return "".join(",".join(f'"{cell}"' for cell in line) + "\n" for line in lines)


class CsvCase(StockSourceCase):
    """The ``csv`` adapter over a CSV file with SKU, Qty and Price columns."""

    options: dict[str, Any] = {  # noqa: RUF012 - read only
        "path": "stock.csv",
        "columns": {"key": "SKU", "quantity": "Qty", "price": "Price"},
    }

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        lines = [["SKU", "Qty", "Price"], *([r.key, str(r.quantity), _price_text(r)] for r in rows)]
        (tmp_path / "stock.csv").write_text(_csv_text(lines))
        return build_source(StockFileSource, self.options, tmp_path)

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any]:
        bad = [["BAD-1", "-1", "1.00"], ["BAD-2", "2", "abc"], ["", "1", ""]]
        good = [[r.key, str(r.quantity), _price_text(r)] for r in rows]
        (tmp_path / "stock.csv").write_text(_csv_text([["SKU", "Qty", "Price"], *bad, *good]))
        return build_source(StockFileSource, self.options, tmp_path)


class XlsxCase(StockSourceCase):
    """The ``xlsx`` alias over a workbook whose stock sheet is the second one.

    Quantities and prices are stored as numbers, as a spreadsheet keeps them.
    """

    options: dict[str, Any] = {  # noqa: RUF012 - read only
        "path": "stock.xlsx",
        "sheet": "Stock",
        "header_row": 2,
        "columns": {"key": "SKU", "quantity": "Qty", "price": "Price"},
    }

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        return self._source(tmp_path, [self._cells(row) for row in rows])

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any]:
        bad: list[list[object]] = [["BAD-1", -1, 1.0], ["BAD-2", 2.5, None], [None, 1, None]]
        return self._source(tmp_path, [*bad, *(self._cells(row) for row in rows)])

    def _cells(self, row: StockRow) -> list[object]:
        price = None if row.price_cents is None else row.price_cents / 100
        return [row.key, float(row.quantity), price]

    def _source(self, tmp_path: Path, data: list[list[object]]) -> StockSource[Any]:
        workbook = openpyxl.Workbook()
        notes = workbook.active
        assert notes is not None
        notes.title = "Notes"
        notes["A1"] = "Exported from the practice system"
        sheet = workbook.create_sheet("Stock")
        sheet.append(["Stock export"])
        sheet.append(["SKU", "Qty", "Price"])
        for cells in data:
            sheet.append(cells)
        workbook.save(tmp_path / "stock.xlsx")
        return build_source(StockFileSource, self.options, tmp_path)


class SqlCase(StockSourceCase):
    """The ``sql`` adapter over a SQLite table.

    SQLite takes no password, and SQLAlchemy rejects a SQLite URL with one, so
    this case sets no ``password_env``.
    """

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        return self._source(tmp_path, [(r.key, r.quantity, _cents_or_none(r)) for r in rows])

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any]:
        bad: list[tuple[object, object, object]] = [("BAD-1", -1, 1.0), ("BAD-2", 2.5, None)]
        good = [(r.key, r.quantity, _cents_or_none(r)) for r in rows]
        return self._source(tmp_path, [*bad, *good])

    def _source(
        self, tmp_path: Path, rows: list[tuple[object, object, object]]
    ) -> StockSource[Any]:
        with sqlite3.connect(tmp_path / "erp.sqlite") as connection:
            connection.execute("CREATE TABLE product (ref TEXT, stock REAL, price NUMERIC)")
            connection.executemany("INSERT INTO product VALUES (?, ?, ?)", rows)
        connection.close()
        options = {
            "url": "sqlite:///erp.sqlite",
            "table": "product",
            "columns": {"key": "ref", "quantity": "stock", "price": "price"},
        }
        return build_source(ErpDatabaseSource, options, tmp_path)


def _cents_or_none(row: StockRow) -> float | None:
    return None if row.price_cents is None else row.price_cents / 100


class FeedCase(StockSourceCase):
    """The ``feed`` adapter over a JSON feed on a loopback HTTP server, with a bearer token."""

    def __init__(self) -> None:
        self.server = FeedHttpServer().__enter__()
        self.feeds = 0

    def close(self) -> None:
        self.server.__exit__(None, None, None)

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        return self._source(tmp_path, [self._record(row) for row in rows])

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any]:
        bad = [{"id": "BAD-1", "stock": -1}, {"id": "BAD-2", "stock": 2, "price": "abc"}]
        return self._source(tmp_path, [*bad, *(self._record(row) for row in rows)])

    def _record(self, row: StockRow) -> dict[str, object]:
        record: dict[str, object] = {"id": row.key, "stock": row.quantity}
        if row.price_cents is not None:
            record["price"] = _price_text(row)
        return record

    def _source(self, tmp_path: Path, records: list[dict[str, object]]) -> StockSource[Any]:
        self.feeds += 1
        body = json.dumps({"items": records}).encode()
        url = self.server.serve(f"/feed-{self.feeds}.json", Route(body=body))
        options = {
            "url": url,
            "format": "json",
            "records_path": "items",
            "auth": {"type": "bearer", "secret_env": CONTRACT_SECRET_ENV},
            "columns": {"key": "id", "quantity": "stock", "price": "price"},
        }
        return build_source(SupplierFeedSource, options, tmp_path)


class ExamplePluginCase(StockSourceCase):
    """The example plugin's ``jsonlines`` adapter, imported from its folder in the repository."""

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        lines = []
        for row in rows:
            record: dict[str, object] = {"sku": row.key, "quantity": row.quantity}
            if row.price_cents is not None:
                record["price"] = _price_text(row)
            lines.append(json.dumps(record))
        return self._source(tmp_path, lines)

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any]:
        good = self.make_source(tmp_path, rows)
        path = tmp_path / "stock.jsonl"
        path.write_text('{"sku": "BAD-1", "quantity": -1}\nnot json\n' + path.read_text())
        return good

    def _source(self, tmp_path: Path, lines: list[str]) -> StockSource[Any]:
        (tmp_path / "stock.jsonl").write_text("".join(f"{line}\n" for line in lines))
        return build_source(_example_adapter(), {"path": "stock.jsonl"}, tmp_path)


def _example_adapter() -> type[StockSource[Any]]:
    if str(EXAMPLE_PLUGIN) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_PLUGIN))
    from eyekiosk_sync_jsonlines import JsonLinesSource

    return JsonLinesSource


#: One entry per adapter: test id and case class.
STOCK_CASES: dict[str, type[StockSourceCase]] = {
    "csv": CsvCase,
    "xlsx": XlsxCase,
    "sql-sqlite": SqlCase,
    "feed-json-http": FeedCase,
    "example-jsonlines": ExamplePluginCase,
}


class TestStockSourceContract(StockSourceContract):
    @pytest.fixture(params=list(STOCK_CASES.values()), ids=list(STOCK_CASES))
    def stock_case(self, request: pytest.FixtureRequest) -> Iterator[StockSourceCase]:
        case = request.param()
        yield case
        close = getattr(case, "close", None)
        if close is not None:
            close()


# Order sinks -----------------------------------------------------------------


class FolderSinkCase(OrderSinkCase):
    """The ``folder`` sink writing JSON files with prescriptions."""

    def make_sink(self, tmp_path: Path) -> OrderSink[Any]:
        options = {"path": "orders", "prescriptions": True}
        return build_sink(FolderOrderSink, options, tmp_path)

    def stored_order_ids(self, tmp_path: Path, sink: OrderSink[Any]) -> list[str]:
        files = sorted((tmp_path / "orders").glob("*.json"))
        return [json.loads(path.read_text())["order"]["id"] for path in files]


class HttpSinkCase(OrderSinkCase):
    """The ``http`` sink posting to a loopback receiver that stores orders by id.

    The receiver upserts on the order id, as the sink's documentation asks of
    an operator's endpoint, and the sink sends the contract secret as its
    ``Authorization`` header value.
    """

    def __init__(self) -> None:
        self.stored: dict[str, list[str]] = {}
        stored = self.stored

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                stored[body["order"]["id"]] = [self.headers.get("Idempotency-Key", "")]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def make_sink(self, tmp_path: Path) -> OrderSink[Any]:
        options = {
            "url": f"http://127.0.0.1:{self.server.server_address[1]}/hooks/orders",
            "prescriptions": True,
            "auth_env": CONTRACT_SECRET_ENV,
        }
        return build_sink(HttpOrderSink, options, tmp_path)

    def stored_order_ids(self, tmp_path: Path, sink: OrderSink[Any]) -> list[str]:
        return sorted(self.stored)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


#: One entry per order sink: test id and case class. The sql-orders sink runs
#: the same contract in tests/adapters/test_erp_orders.py, on SQLite and
#: PostgreSQL, beside the tables it needs.
SINK_CASES: dict[str, type[OrderSinkCase]] = {
    "folder-json": FolderSinkCase,
    "http": HttpSinkCase,
}


class TestOrderSinkContract(OrderSinkContract):
    @pytest.fixture(params=list(SINK_CASES.values()), ids=list(SINK_CASES))
    def sink_case(self, request: pytest.FixtureRequest) -> Iterator[OrderSinkCase]:
        case = request.param()
        yield case
        close = getattr(case, "close", None)
        if close is not None:
            close()
