"""ERP database order sink and status source.

``adapter = "sql-orders"`` writes pulled kiosk orders and their lines into
tables of the practice's ERP database. ``adapter = "sql-status"`` reads the
fulfilment status that the ERP sets on those orders, to send back to Eyekiosk.
Both connect like the ``sql`` stock adapter (``adapters.erp_database``): a
SQLAlchemy URL without a password, and ``password_env`` or ``password_file``.

The sink:

* Writes each ``deliver()`` call in one transaction. An order row is inserted
  or, when its id is already there, updated (``INSERT … ON CONFLICT DO UPDATE``
  on PostgreSQL and SQLite, ``INSERT … ON DUPLICATE KEY UPDATE`` on MySQL and
  MariaDB), so the order-id column needs a primary key or unique constraint.
  The lines of every order in the call are deleted and inserted again, so a
  changed order never keeps old lines. If any statement fails, the whole call is
  rolled back and every order of the call is reported as not delivered.
* Writes prescriptions only when ``orders.prescriptions`` names a column, as a
  JSON array. Prescriptions are patient data and appear nowhere else: not in
  logs and not in error messages.
* Reads ``booked_orders`` from ``booked_column`` when it is set. An order is
  booked when that column is true, a non-zero number, or text other than
  ``0``, ``false``, ``f``, ``no``, ``n`` or empty (ignoring case).

The status source reads order ids and ERP status words from a table or a
read-only query, and maps each word through ``status_map`` to an Eyekiosk
status (pending, in_progress, completed, shipped, cancelled). Without a map the
words must be Eyekiosk statuses already. A word that maps to nothing rejects
its row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from pydantic import ConfigDict, Field, model_validator
from sqlalchemy import Column, MetaData, Table, bindparam, delete, select, text
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.types import DateTime

from adapters.base import (
    ORDER_ID,
    STATUS,
    AdapterOptions,
    DeliveryResult,
    OrderDelivery,
    OrderSink,
    Rejection,
    SourceContext,
    StatusResult,
    StatusSource,
)
from adapters.erp_database import (
    Database,
    DatabaseOptions,
    StatementTimeoutError,
    begin_read_only,
    check_query_text,
    database_message,
    is_write_rejected,
    statement_time_limit,
)
from sync.errors import SinkError, SourceError
from sync.keys import STRING_DTYPE
from sync.models import ORDER_STATUSES, OrderStatus

log = logging.getLogger("eyekiosk_sync.adapters.sql_orders")
status_log = logging.getLogger("eyekiosk_sync.adapters.sql_status")

FALSE_WORDS = frozenset({"", "0", "false", "no", "n", "f"})


# Sink options ------------------------------------------------------------------


class OrderColumns(AdapterOptions):
    """The orders table and the columns that order fields go to.

    Attributes:
        table: table name, optionally as ``schema.table``.
        order_id: column of the Eyekiosk order id; needs a unique constraint.
        status: column of the Eyekiosk status.
        created_at: column of the order's creation time (UTC).
        updated_at: column of the order's last change (UTC).
        total: column of the order total, as a decimal amount.
        currency: column of the three-letter currency code.
        prescriptions: JSON or text column for the order's prescriptions. When it
            is None, prescriptions are neither fetched nor written.
    """

    table: str
    order_id: str
    status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    total: str | None = None
    currency: str | None = None
    prescriptions: str | None = None


class LineColumns(AdapterOptions):
    """The order-lines table and the columns that item fields go to.

    Attributes:
        table: table name, optionally as ``schema.table``.
        order_id: column of the order id the line belongs to.
        frame_id: column of the Eyekiosk frame id.
        sku: column of the frame's SKU.
        quantity: column of the ordered quantity.
        unit_price: column of the unit price, as a decimal amount.
    """

    table: str
    order_id: str
    frame_id: str | None = None
    sku: str | None = None
    quantity: str | None = None
    unit_price: str | None = None


class ErpOrderSinkOptions(DatabaseOptions):
    """Options of the ``sql-orders`` sink.

    Attributes:
        orders: the orders table and its columns.
        lines: the order-lines table and its columns; None writes no lines.
        booked_column: column of the orders table that the ERP sets once it has
            booked the order against its stock. None means the sink cannot tell.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    orders: OrderColumns
    lines: LineColumns | None = None
    booked_column: str | None = None


class ErpOrderSink(OrderSink[ErpOrderSinkOptions]):
    """Orders written into ERP tables (alias ``sql-orders``)."""

    options_model = ErpOrderSinkOptions

    def __init__(self, options: ErpOrderSinkOptions, *, context: SourceContext) -> None:
        super().__init__(options, context=context)
        self.database = Database(options, context.config_dir)

    @property
    def wants_prescriptions(self) -> bool:
        """Whether a prescriptions column is mapped."""
        return self.options.orders.prescriptions is not None

    def describe(self) -> str:
        """Describe the sink as ``sql-orders <url without password> table <orders table>``."""
        return f"sql-orders {self.database.display_url()} table {self.options.orders.table}"

    def deliver(self, deliveries: Sequence[OrderDelivery]) -> list[DeliveryResult]:
        """Upsert the orders and replace their lines in one transaction.

        Returns:
            One result per delivery, in order: all delivered, or, when any
            statement failed, none, each with the reason.

        Raises:
            SinkError: when the database cannot be reached.
        """
        if not deliveries:
            return []
        current = "(none)"
        try:
            with (
                self.database.engine.begin() as connection,
                self._time_limit(connection),
            ):
                orders, lines = self._tables(connection)
                if lines is not None:
                    self._delete_lines(connection, lines, [d.order_id for d in deliveries])
                for delivery in deliveries:
                    current = delivery.order_id
                    self._upsert_order(connection, orders, delivery)
                    if lines is not None:
                        self._insert_lines(connection, lines, delivery)
        except StatementTimeoutError as error:
            work = f"writing order {current}" if current != "(none)" else "reading the tables"
            message = self.database.scrub(error.explain(work))
            raise SinkError(
                f"{message}. The batch of {len(deliveries)} orders was rolled back.",
                sink=self.describe(),
            ) from None
        except DBAPIError as error:
            message = self.database.scrub(database_message(error))
            if error.connection_invalidated or _is_connect_failure(error, current):
                raise SinkError(
                    f"the database is unreachable: {message}", sink=self.describe()
                ) from None
            log.warning(
                "sql_orders.rolled_back sink=%s orders=%d failed_order=%s reason=%s",
                self.describe(),
                len(deliveries),
                current,
                message,
            )
            reason = f"the batch was rolled back because order {current} failed: {message}"
            return [DeliveryResult(d.order_id, delivered=False, error=reason) for d in deliveries]

        log.info("sql_orders.delivered sink=%s orders=%d", self.describe(), len(deliveries))
        return [DeliveryResult(d.order_id, delivered=True) for d in deliveries]

    def booked_orders(self, order_ids: Sequence[str]) -> set[str] | None:
        """Return the orders whose ``booked_column`` is truthy, or None without one.

        Raises:
            SinkError: when the database cannot be read.
        """
        column = self.options.booked_column
        if column is None:
            return None
        if not order_ids:
            return set()
        try:
            with self.database.engine.connect() as connection, self._time_limit(connection):
                orders, _ = self._tables(connection)
                id_column = orders.c[self.options.orders.order_id]
                statement = select(id_column, _column(orders, column, "booked_column")).where(
                    id_column.in_([str(order_id) for order_id in order_ids])
                )
                rows = connection.execute(statement).all()
        except StatementTimeoutError as error:
            message = self.database.scrub(error.explain(f"reading {column}"))
            raise SinkError(message, sink=self.describe()) from None
        except DBAPIError as error:
            message = self.database.scrub(database_message(error))
            raise SinkError(f"reading {column} failed: {message}", sink=self.describe()) from None
        return {str(order_id) for order_id, booked in rows if _truthy(booked)}

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.database.close()

    def _time_limit(self, connection: Connection) -> AbstractContextManager[None]:
        return statement_time_limit(
            connection, self.database.dialect, self.options.statement_timeout_s
        )

    # Writing ---------------------------------------------------------------------

    def _tables(self, connection: Connection) -> tuple[Table, Table | None]:
        orders = self._reflect(connection, self.options.orders.table)
        for name, mapped in self.options.orders.model_dump(exclude={"table"}).items():
            if mapped is not None:
                _column(orders, mapped, f"orders.{name}")
        if self.options.booked_column is not None:
            _column(orders, self.options.booked_column, "booked_column")
        if self.options.lines is None:
            return orders, None
        lines = self._reflect(connection, self.options.lines.table)
        for name, mapped in self.options.lines.model_dump(exclude={"table"}).items():
            if mapped is not None:
                _column(lines, mapped, f"lines.{name}")
        return orders, lines

    def _reflect(self, connection: Connection, qualified: str) -> Table:
        schema, _, name = qualified.rpartition(".")
        try:
            return Table(name, MetaData(), autoload_with=connection, schema=schema or None)
        except NoSuchTableError:
            raise SinkError(
                f"table {qualified!r} was not found. Check the table option and the "
                f"database or schema the URL connects to",
                sink=self.describe(),
            ) from None

    def _upsert_order(self, connection: Connection, orders: Table, delivery: OrderDelivery) -> None:
        mapping = self.options.orders
        order = delivery.order
        values: dict[str, Any] = {mapping.order_id: delivery.order_id}
        fields = {
            mapping.status: order.get("status"),
            mapping.created_at: _timestamp(order.get("created_at"), orders, mapping.created_at),
            mapping.updated_at: _timestamp(order.get("updated_at"), orders, mapping.updated_at),
            mapping.total: _amount(order.get("total")),
            mapping.currency: order.get("currency"),
            mapping.prescriptions: json.dumps(delivery.prescriptions, sort_keys=True),
        }
        values.update({name: value for name, value in fields.items() if name is not None})
        updates = {name: value for name, value in values.items() if name != mapping.order_id}
        connection.execute(_upsert(connection, orders, values, updates, mapping.order_id))

    def _delete_lines(self, connection: Connection, lines: Table, order_ids: list[str]) -> None:
        assert self.options.lines is not None
        id_column = lines.c[self.options.lines.order_id]
        connection.execute(delete(lines).where(id_column.in_(order_ids)))

    def _insert_lines(self, connection: Connection, lines: Table, delivery: OrderDelivery) -> None:
        mapping = self.options.lines
        assert mapping is not None
        rows = []
        for item in delivery.order.get("items") or []:
            fields = {
                mapping.order_id: delivery.order_id,
                mapping.frame_id: item.get("frame_id"),
                mapping.sku: item.get("sku"),
                mapping.quantity: item.get("quantity"),
                mapping.unit_price: _amount(item.get("unit_price")),
            }
            rows.append({name: value for name, value in fields.items() if name is not None})
        if rows:
            connection.execute(lines.insert(), rows)


def _column(table: Table, name: str, option: str) -> Column[Any]:
    if name in table.c:
        return table.c[name]
    found = ", ".join(table.c.keys())
    raise SinkError(
        f"column {name!r} (option {option}) was not found in table {table.name!r}. "
        f"Its columns are {found}",
        sink=table.name,
    )


def _upsert(
    connection: Connection,
    table: Table,
    values: dict[str, Any],
    updates: dict[str, Any],
    key: str,
) -> Any:
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        conflict = module.insert(table).values(values)
        if not updates:
            return conflict.on_conflict_do_nothing(index_elements=[key])
        return conflict.on_conflict_do_update(
            index_elements=[key], set_={name: conflict.excluded[name] for name in updates}
        )
    if dialect in ("mysql", "mariadb"):
        duplicate = mysql.insert(table).values(values)
        changed = {name: duplicate.inserted[name] for name in updates} or {key: table.c[key]}
        return duplicate.on_duplicate_key_update(changed)
    raise NotImplementedError(
        f"the sql-orders sink supports PostgreSQL, MySQL, MariaDB and SQLite, not {dialect}"
    )


def _timestamp(value: Any, table: Table, name: str | None) -> datetime | None:
    """Parse an ISO 8601 timestamp; naive UTC for columns without a time zone."""
    if value is None or name is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    column_type = table.c[name].type
    if isinstance(column_type, DateTime) and column_type.timezone:
        return moment
    return moment.replace(tzinfo=None)


def _amount(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().casefold() not in FALSE_WORDS
    return bool(value)


def _is_connect_failure(error: DBAPIError, current: str) -> bool:
    """Return whether an OperationalError came before any order, so the database was not reached."""
    from sqlalchemy.exc import OperationalError

    return isinstance(error, OperationalError) and current == "(none)"


# Status source -----------------------------------------------------------------


class StatusColumns(AdapterOptions):
    """Columns (or query result columns) of the order id and the status word."""

    order_id: str
    status: str


class ErpStatusOptions(DatabaseOptions):
    """Options of the ``sql-status`` source.

    Attributes:
        table: table or view to read, optionally as ``schema.table``.
        query: SELECT statement to run instead; bind ``:name`` placeholders
            with ``parameters``.
        parameters: values of the query's placeholders; a list binds as an
            expanding ``IN`` list.
        columns: which columns hold the order id and the status word.
        status_map: ERP status word to Eyekiosk status, e.g.
            ``{ "Ready for pickup" = "completed" }``. Words are compared after
            trimming, ignoring case. Empty means the words are Eyekiosk statuses.
        label: name that rejected rows' locations start with; defaults to the
            table name, or ``query``.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    table: str | None = None
    query: str | None = None
    parameters: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(
        default_factory=dict
    )
    columns: StatusColumns
    status_map: dict[str, OrderStatus] = Field(default_factory=dict)
    label: str | None = None

    @model_validator(mode="after")
    def _check_combinations(self) -> ErpStatusOptions:
        if (self.table is None) == (self.query is None):
            raise ValueError("set either table or query")
        if self.query is not None:
            check_query_text(self.query, dialect=make_url(self.url).get_backend_name())
        if self.parameters and self.query is None:
            raise ValueError("parameters bind placeholders of a query; set query or remove them")
        folded = [word.strip().casefold() for word in self.status_map]
        repeated = sorted({word for word in folded if folded.count(word) > 1})
        if repeated:
            raise ValueError(f"status_map repeats words that differ only in case: {repeated}")
        return self


class ErpStatusSource(StatusSource[ErpStatusOptions]):
    """Order statuses read from an ERP table or query (alias ``sql-status``)."""

    options_model = ErpStatusOptions

    def __init__(self, options: ErpStatusOptions, *, context: SourceContext) -> None:
        super().__init__(options, context=context)
        self.database = Database(options, context.config_dir)

    def describe(self) -> str:
        """Describe the source as ``sql-status <url without password> table <name>``."""
        what = f"table {self.options.table}" if self.options.table else "query"
        return f"sql-status {self.database.display_url()} {what}"

    def read_statuses(self) -> StatusResult:
        """Read every (order id, status) row in a read-only transaction and map the words.

        Returns:
            One row per order id with its Eyekiosk status, and a rejection for
            each row whose word maps to nothing, whose order id is empty, or
            whose order id has rows with different statuses.

        Raises:
            SourceError: when the database cannot be read or a column is missing.
        """
        self.database.check_sqlite_file(self.describe())
        try:
            rows = self._fetch()
        except StatementTimeoutError as error:
            message = self.database.scrub(error.explain("the query"))
            raise SourceError(message, source=self.describe()) from None
        except DBAPIError as error:
            message = self.database.scrub(database_message(error))
            if is_write_rejected(error):
                message = f"the query tries to write to the database: {message}"
            raise SourceError(f"the read failed: {message}", source=self.describe()) from None

        result = self._map(rows)
        status_log.info(
            "sql_status.read source=%s rows=%d rejected=%d",
            self.describe(),
            len(result.rows),
            len(result.rejections),
        )
        return result

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.database.close()

    def _fetch(self) -> list[tuple[Any, Any]]:
        options = self.options
        with self.database.engine.connect() as connection:
            begin_read_only(connection, self.database.dialect)
            with statement_time_limit(
                connection, self.database.dialect, options.statement_timeout_s
            ):
                rows = self._select(connection)
            connection.rollback()
        return rows

    def _select(self, connection: Connection) -> list[tuple[Any, Any]]:
        options = self.options
        if options.query is not None:
            statement = text(options.query)
            for name, value in options.parameters.items():
                if isinstance(value, list):
                    statement = statement.bindparams(bindparam(name, expanding=True))
            result = connection.execute(statement, dict(options.parameters))
        else:
            assert options.table is not None
            schema, _, name = options.table.rpartition(".")
            try:
                table = Table(name, MetaData(), autoload_with=connection, schema=schema or None)
            except NoSuchTableError:
                raise SourceError(
                    f"table {options.table!r} was not found", source=self.describe()
                ) from None
            columns = [
                self._check(table.c.keys(), wanted)
                for wanted in (options.columns.order_id, options.columns.status)
            ]
            result = connection.execute(select(*(table.c[name] for name in columns)))
        keys = list(result.keys())
        positions = [
            keys.index(self._check(keys, wanted))
            for wanted in (options.columns.order_id, options.columns.status)
        ]
        return [(row[positions[0]], row[positions[1]]) for row in result]

    def _check(self, found: Sequence[str], wanted: str) -> str:
        if wanted in found:
            return wanted
        raise SourceError(
            f"column {wanted!r} was not found. The columns are {', '.join(found)}. "
            f"Fix the name under [columns]",
            source=self.describe(),
        )

    def _map(self, rows: list[tuple[Any, Any]]) -> StatusResult:
        label = self.options.label or self.options.table or "query"
        lookup: dict[str, str] = {
            word.strip().casefold(): status for word, status in self.options.status_map.items()
        }
        if not lookup:
            lookup = {status: status for status in ORDER_STATUSES}

        mapped: dict[str, tuple[str, int]] = {}
        rejections: list[tuple[int, Rejection]] = []
        conflicting: set[str] = set()
        for position, (raw_id, raw_status) in enumerate(rows):
            order_id = "" if raw_id is None else str(raw_id).strip()
            where = f"{label} {self.options.columns.order_id}={order_id or '(empty)'}"
            if not order_id:
                rejections.append((position, Rejection(where, "the order id is empty.")))
                continue
            word = "" if raw_status is None else str(raw_status).strip()
            status = lookup.get(word.casefold())
            if status is None:
                reason = (
                    f"status {word!r} is not in status_map. Add it, mapped to one of "
                    f"{', '.join(ORDER_STATUSES)}."
                    if self.options.status_map
                    else f"status {word!r} is not an Eyekiosk status. Map it in status_map."
                )
                rejections.append((position, Rejection(where, reason, key=order_id)))
                continue
            if order_id in mapped and mapped[order_id][0] != status:
                conflicting.add(order_id)
            mapped.setdefault(order_id, (status, position))

        for order_id in conflicting:
            position = mapped.pop(order_id)[1]
            reason = "the order has rows with different statuses, so it is unclear which is right."
            where = f"{label} {self.options.columns.order_id}={order_id}"
            rejections.append((position, Rejection(where, reason, key=order_id)))

        frame = pd.DataFrame(
            {
                ORDER_ID: pd.Series(list(mapped), dtype=STRING_DTYPE),
                STATUS: pd.Series([status for status, _ in mapped.values()], dtype=STRING_DTYPE),
            }
        )
        ordered = [rejection for _, rejection in sorted(rejections, key=lambda item: item[0])]
        return StatusResult(rows=frame, rejections=ordered, description=self.describe())


__all__ = [
    "ErpOrderSink",
    "ErpOrderSinkOptions",
    "ErpStatusOptions",
    "ErpStatusSource",
    "LineColumns",
    "OrderColumns",
    "StatusColumns",
]
