"""Tests of the ERP order sink (``sql-orders``) and status source (``sql-status``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, text

from adapters.base import OrderDelivery, OrderSink, SourceContext
from adapters.erp_orders import ErpOrderSink, ErpStatusSource
from adapters.testing import (
    CONTRACT_SECRET_ENV,
    OrderSinkCase,
    OrderSinkContract,
    build_sink,
)
from sync.errors import SinkError, SourceError
from tests.adapters.erp_schemas import create_order_tables
from tests.databases import mariadb_database, postgres_database

SINK_OPTIONS: dict[str, Any] = {
    "orders": {
        "table": "kiosk_orders",
        "order_id": "order_ref",
        "status": "status",
        "created_at": "created",
        "updated_at": "updated",
        "total": "total",
        "currency": "currency",
    },
    "lines": {
        "table": "kiosk_order_lines",
        "order_id": "order_ref",
        "frame_id": "frame_id",
        "sku": "sku",
        "quantity": "qty",
        "unit_price": "unit_price",
    },
    "booked_column": "stock_booked",
}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def orders_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with empty kiosk order tables."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'erp.db'}"
        create_order_tables(url)
        yield url
        return
    opener = postgres_database if request.param == "postgresql" else mariadb_database
    with opener() as url:
        create_order_tables(url)
        yield url


def context(folder: Path | None = None) -> SourceContext:
    folder = folder or Path.cwd()
    return SourceContext(job="test", config_dir=folder, state_dir=folder)


def sink(url: str, **extra: Any) -> ErpOrderSink:
    adapter = ErpOrderSink.from_mapping({"url": url, **SINK_OPTIONS, **extra}, context=context())
    assert isinstance(adapter, ErpOrderSink)
    return adapter


def order(
    number: int, *, quantity: int = 1, status: str = "pending", lines: int = 2
) -> OrderDelivery:
    return OrderDelivery(
        order={
            "id": f"ord_{number}",
            "status": status,
            "created_at": "2024-05-01T10:00:00Z",
            "updated_at": f"2024-05-01T10:{number:02d}:00Z",
            "currency": "USD",
            "total": "578.00",
            "items": [
                {
                    "frame_id": f"frm_{number}_{line}",
                    "sku": f"FR-{number:03d}-{line}",
                    "quantity": quantity,
                    "unit_price": "289.00",
                }
                for line in range(lines)
            ],
        },
        prescriptions=[{"id": f"rx_{number}", "od": {"sphere": "-1.25"}}],
    )


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def test_sink_upsert_twice_keeps_one_row(orders_db: str) -> None:
    """Delivering an order twice leaves one order row, updated, and only the new lines."""
    adapter = sink(orders_db)

    first = adapter.deliver([order(1), order(2)])
    second = adapter.deliver([order(1, quantity=3, status="in_progress", lines=1)])
    adapter.close()

    assert all(result.delivered for result in [*first, *second])
    assert rows(orders_db, "SELECT order_ref, status FROM kiosk_orders ORDER BY order_ref") == [
        ("ord_1", "in_progress"),
        ("ord_2", "pending"),
    ]
    lines = rows(orders_db, "SELECT sku, qty FROM kiosk_order_lines WHERE order_ref = 'ord_1'")
    assert lines == [("FR-001-0", 3)]
    assert rows(orders_db, "SELECT COUNT(*) FROM kiosk_order_lines")[0][0] == 3
    total = rows(orders_db, "SELECT total, currency FROM kiosk_orders WHERE order_ref = 'ord_2'")
    assert [(float(t), c) for t, c in total] == [(578.0, "USD")]


def test_sink_failure_rolls_back_whole_call(orders_db: str) -> None:
    """A constraint violation on the third order rolls back all; a retry then writes each once."""
    adapter = sink(orders_db)
    batch = [order(1), order(2), order(3, quantity=0), order(4)]

    failed = adapter.deliver(batch)

    assert [result.delivered for result in failed] == [False] * 4
    assert all("ord_3" in (result.error or "") for result in failed)
    assert rows(orders_db, "SELECT COUNT(*) FROM kiosk_orders")[0][0] == 0
    assert rows(orders_db, "SELECT COUNT(*) FROM kiosk_order_lines")[0][0] == 0

    batch[2] = order(3)
    retried = adapter.deliver(batch)
    again = adapter.deliver(batch)
    adapter.close()

    assert all(result.delivered for result in [*retried, *again])
    assert rows(orders_db, "SELECT COUNT(*) FROM kiosk_orders")[0][0] == 4
    assert rows(orders_db, "SELECT COUNT(*) FROM kiosk_order_lines")[0][0] == 8


def test_sink_prescriptions_only_when_mapped(orders_db: str) -> None:
    """Prescriptions are written to the mapped JSON column, and not fetched without one."""
    plain = sink(orders_db)
    assert plain.wants_prescriptions is False
    plain.close()

    options = {**SINK_OPTIONS["orders"], "prescriptions": "rx"}
    adapter = sink(orders_db, orders=options)
    assert adapter.wants_prescriptions is True
    adapter.deliver([order(7)])
    adapter.close()

    (stored,) = rows(orders_db, "SELECT rx FROM kiosk_orders")[0]
    value = stored if isinstance(stored, list) else json.loads(stored)
    assert value == [{"id": "rx_7", "od": {"sphere": "-1.25"}}]


def test_sink_booked_orders_reads_column(orders_db: str) -> None:
    """booked_orders returns the orders whose booked column the ERP set; None without a column."""
    adapter = sink(orders_db)
    adapter.deliver([order(1), order(2), order(3)])
    engine = create_engine(orders_db)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE kiosk_orders SET stock_booked = 1 WHERE order_ref = 'ord_2'")
        )
    engine.dispose()

    assert adapter.booked_orders(["ord_1", "ord_2", "ord_9"]) == {"ord_2"}
    adapter.close()
    unbooked = sink(orders_db, booked_column=None)
    assert unbooked.booked_orders(["ord_2"]) is None


def test_sink_missing_column_names_it(tmp_path: Path) -> None:
    """A mapped column that the table lacks fails every order with a reason naming it."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_order_tables(url)
    adapter = sink(url, booked_column="booked")

    with pytest.raises(SinkError, match="column 'booked'"):
        adapter.deliver([order(1)])


# Status source --------------------------------------------------------------------


STATUS_MAP = {"Open": "pending", "In Lab": "in_progress", "Ready for pickup": "completed"}


def test_status_source_maps_words(orders_db: str) -> None:
    """ERP words map through status_map, ignoring case; unknown words become rejections."""
    adapter = sink(orders_db)
    adapter.deliver([order(1), order(2), order(3), order(4)])
    adapter.close()
    engine = create_engine(orders_db)
    with engine.begin() as connection:
        for ref, word in [("ord_1", "In Lab"), ("ord_2", "ready for pickup"), ("ord_3", "Lost")]:
            connection.execute(
                text("UPDATE kiosk_orders SET status = :word WHERE order_ref = :ref"),
                {"word": word, "ref": ref},
            )
    engine.dispose()

    source = ErpStatusSource.from_mapping(
        {
            "url": orders_db,
            "table": "kiosk_orders",
            "columns": {"order_id": "order_ref", "status": "status"},
            "status_map": {**STATUS_MAP, "pending": "pending"},
        },
        context=context(),
    )
    result = source.read_statuses()
    source.close()

    found = dict(zip(result.rows["order_id"], result.rows["status"], strict=True))
    assert found == {"ord_1": "in_progress", "ord_2": "completed", "ord_4": "pending"}
    assert [r.location for r in result.rejections] == ["kiosk_orders order_ref=ord_3"]
    assert "'Lost' is not in status_map" in result.rejections[0].reason


def test_status_source_query_with_parameters(tmp_path: Path) -> None:
    """A query with an expanding parameter reads only the listed orders."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    create_order_tables(url)
    adapter = sink(url)
    adapter.deliver([order(1), order(2, status="shipped")])
    adapter.close()

    source = ErpStatusSource.from_mapping(
        {
            "url": url,
            "query": "SELECT order_ref, status FROM kiosk_orders WHERE status IN :open",
            "parameters": {"open": ["shipped"]},
            "columns": {"order_id": "order_ref", "status": "status"},
        },
        context=context(),
    )
    result = source.read_statuses()

    assert list(result.rows["order_id"]) == ["ord_2"]
    assert list(result.rows["status"]) == ["shipped"]
    assert result.rejections == []


def test_status_source_second_statement_invalid() -> None:
    """A status query with a second statement after ';' fails validation."""
    with pytest.raises(ValidationError, match="more than one statement"):
        ErpStatusSource.from_mapping(
            {
                "url": "sqlite:///erp.db",
                "query": "SELECT order_ref, status FROM kiosk_orders; DELETE FROM kiosk_orders",
                "columns": {"order_id": "order_ref", "status": "status"},
            },
            context=context(),
        )


# Statement timeout --------------------------------------------------------------------

SLEEPING_STATUS_QUERIES = {
    "postgresql": "SELECT order_ref, status FROM kiosk_orders, pg_sleep(5)",
    "mysql": "SELECT order_ref, status FROM kiosk_orders, (SELECT SLEEP(5) AS pause) z",
}


@pytest.fixture(params=["postgresql", "mariadb"])
def server_orders_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """Empty kiosk order tables on the PostgreSQL and MariaDB servers."""
    opener = postgres_database if request.param == "postgresql" else mariadb_database
    with opener() as url:
        create_order_tables(url)
        yield url


def test_status_source_statement_timeout(server_orders_db: str) -> None:
    """A status query that runs past statement_timeout_s is a SourceError naming the option."""
    adapter = sink(server_orders_db)
    adapter.deliver([order(1)])
    adapter.close()
    dialect = create_engine(server_orders_db).dialect.name
    source = ErpStatusSource.from_mapping(
        {
            "url": server_orders_db,
            "query": SLEEPING_STATUS_QUERIES[dialect],
            "statement_timeout_s": 1,
            "columns": {"order_id": "order_ref", "status": "status"},
        },
        context=context(),
    )
    started = time.monotonic()

    with pytest.raises(SourceError, match=r"ran longer than statement_timeout_s = 1 seconds"):
        source.read_statuses()
    source.close()
    assert time.monotonic() - started < 4


class TableLock:
    """Hold a lock on kiosk_orders from another connection until released or for 6 seconds."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.locked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql("LOCK TABLE kiosk_orders IN ACCESS EXCLUSIVE MODE")
            else:
                connection.exec_driver_sql("SELECT * FROM kiosk_orders FOR UPDATE")
            self.locked.set()
            self.release.wait(timeout=6)
            connection.rollback()

    def __enter__(self) -> TableLock:
        self.thread.start()
        assert self.locked.wait(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.thread.join(timeout=10)
        self.engine.dispose()


def test_sink_statement_timeout(server_orders_db: str) -> None:
    """A write blocked past statement_timeout_s raises SinkError and rolls the batch back."""
    adapter = sink(server_orders_db, statement_timeout_s=1)
    adapter.deliver([order(1)])
    started = time.monotonic()

    with TableLock(server_orders_db), pytest.raises(SinkError) as caught:
        adapter.deliver([order(1, status="shipped"), order(2)])
    adapter.close()

    assert time.monotonic() - started < 5
    assert "ran longer than statement_timeout_s = 1 seconds" in str(caught.value)
    assert "rolled back" in str(caught.value)
    assert rows(server_orders_db, "SELECT order_ref, status FROM kiosk_orders") == [
        ("ord_1", "pending")
    ]


# Adapter contract -----------------------------------------------------------------


class SqlOrdersCase(OrderSinkCase):
    """The ``sql-orders`` sink over kiosk order tables in SQLite or PostgreSQL.

    The PostgreSQL case passes the contract secret as the password; the local
    server trusts loopback connections, so it is sent and ignored.
    """

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.server: Any = None

    def make_sink(self, tmp_path: Path) -> OrderSink[Any]:
        if self.dialect == "sqlite":
            url = f"sqlite:///{tmp_path / 'erp.db'}"
        else:
            self.server = postgres_database()
            url = self.server.__enter__()
        create_order_tables(url)
        options = {**SINK_OPTIONS, "orders": {**SINK_OPTIONS["orders"], "prescriptions": "rx"}}
        if self.dialect != "sqlite":
            options["password_env"] = CONTRACT_SECRET_ENV
        self.url = url
        return build_sink(ErpOrderSink, {"url": url, **options}, tmp_path)

    def stored_order_ids(self, tmp_path: Path, sink: OrderSink[Any]) -> list[str] | None:
        return [row[0] for row in rows(self.url, "SELECT order_ref FROM kiosk_orders")]

    def close(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)


class TestSqlOrdersContract(OrderSinkContract):
    @pytest.fixture(params=["sqlite", "postgresql"], ids=["sql-orders-sqlite", "sql-orders-pg"])
    def sink_case(self, request: pytest.FixtureRequest) -> Iterator[OrderSinkCase]:
        case = SqlOrdersCase(request.param)
        yield case
        case.close()
