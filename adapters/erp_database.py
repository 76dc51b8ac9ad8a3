"""ERP database stock adapter, selected with ``adapter = "sql"``.

Reads stock straight from the database of an ERP or practice system through
SQLAlchemy: PostgreSQL (``postgresql+psycopg://``), MySQL and MariaDB
(``mysql+pymysql://``), SQLite (``sqlite:///path``) and, untested here,
SQL Server (``mssql+pyodbc://``). The options name either a table (or view) and
its columns, or a read-only query with bound parameters.

Rules that the options do not change:

* The URL carries no password. The password comes from the environment variable
  named by ``password_env`` or from the file named by ``password_file``, and it
  never appears in ``describe()``, logs or error messages.
* The read runs in a read-only transaction where the database has one:
  ``SET TRANSACTION READ ONLY`` on PostgreSQL, ``START TRANSACTION READ ONLY`` on
  MySQL and MariaDB, ``PRAGMA query_only = ON`` on SQLite. A query must start
  with SELECT, WITH, VALUES or TABLE, and a query that still tries to write
  fails with a SourceError. Other databases get no read-only transaction, so
  connect them with an account that can only read.
* Rows are streamed with a server-side cursor in chunks of ``chunk_size`` and
  converted chunk by chunk, so the raw rows are never all in memory at once.
* If the connection drops during the read, the whole read is retried once on a
  fresh connection, with a WARNING in the log.
* Values are parsed by ``adapters.normalise`` with the value options, after
  numeric columns are turned into exact text. A quantity is a whole number of 0
  or more: ``3.0`` is 3, and ``2.5`` rejects the row. A floating-point quantity
  within 8 units in the last place (ULPs) of a whole number counts as that
  number, which absorbs rounding noise such as ``2.9999999999999996``.
* A price is an amount with at most two decimal places, converted to integer
  cents. Decimal columns are exact, so ``288.99000000`` is read and ``288.995``
  is rejected. A floating-point value (Dolibarr's ``double(24,8)``) cannot
  represent most two-place amounts exactly, so it is read when it is within 8
  ULPs of a two-place amount: ``288.99`` stored as ``288.990000000000009094947``
  and ``0.1 + 0.2`` are read, ``288.99000001`` is rejected. NULL gives a missing
  price, which leaves the frame's price in Eyekiosk as it is.
* With a ``warehouse`` column, only rows whose warehouse is listed in
  ``warehouses`` are read (every row when the list is not set), and the
  quantities of each key are summed across its rows. Each row's quantity must
  be valid on its own, so a negative warehouse row rejects the key. The price is
  the product's, not a sum, so the rows of one key must agree on it. A rejected
  row rejects its whole key, because a partial sum would understate the stock.
  Such a key gets one rejection that lists every reason, each rejected row
  named as ``row <number> (<warehouse column>=<value>)``.
  Without a ``warehouse`` column, a key on several rows with the same quantity
  and price is kept once, and a key whose rows differ is rejected on every row.
* A NaN or infinite number in the quantity or price column rejects its row
  with that reason. NaN is not NULL, so it never reads as a missing price.
* A rejected row's location is ``<label> <key column>=<key>``, for example
  ``llx_product ref=FR-00001``, with `` at row <number>`` added when the key is
  on several rows. The number counts the rows of the query result from 1. The
  label is the table name, ``query`` in query mode, or the ``label`` option.
* Each statement may run for ``statement_timeout_s`` seconds (see
  ``statement_time_limit``), and a query must be one statement.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import (
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)
from sqlalchemy import Engine, bindparam, create_engine, inspect, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, NoSuchTableError
from sqlalchemy.sql import column, select, table

from adapters.base import (
    KEY,
    PRICE_CENTS,
    QUANTITY,
    AdapterOptions,
    Rejection,
    SourceContext,
    SourceResult,
    StockSource,
)
from adapters.normalise import (
    ColumnMap,
    Locate,
    ValueOptions,
    cells_as_text,
    join_limited,
    normalise_cells,
    value_columns,
)
from sync.errors import ConfigError, SourceError
from sync.keys import STRING_DTYPE

log = logging.getLogger("eyekiosk_sync.adapters.sql")

DEFAULT_CHUNK_SIZE = 10_000
DEFAULT_CONNECT_TIMEOUT_S = 10
DEFAULT_STATEMENT_TIMEOUT_S = 300.0
# PyMySQL's read_timeout, a backstop for statements that the server does not
# limit (MySQL limits SELECT only), waits this much longer than the server's
# own limit, so that the server's clearer error normally comes first.
READ_TIMEOUT_MARGIN_S = 10
# SQLite calls the deadline check after this many virtual machine instructions.
SQLITE_PROGRESS_STEPS = 10_000
# Floating-point values within this many units in the last place of a whole
# number (quantities) or of a two-place amount (prices) are read as that value.
FLOAT_NOISE_ULPS = 8
QUERY_KEYWORDS = ("SELECT", "WITH", "VALUES", "TABLE")
# Key column of the per-row pass that checks quantities before they are summed.
ROW_KEY = "__row"
# URL query keys that some drivers read a password from.
PASSWORD_QUERY_KEYS = frozenset({"password", "passwd", "pwd"})

_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
# What may follow the last statement: spaces, comments and further semicolons.
_ONLY_COMMENTS = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/|;)*", re.DOTALL)
# The two characters before a PostgreSQL E'...' string: E or e, not part of a longer name.
_ESCAPE_STRING_PREFIX = re.compile(r"(?:^|[^\w$])?[Ee]")
# A PostgreSQL dollar quote opener such as $$ or $body$.
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")


# Options ---------------------------------------------------------------------


class DatabaseOptions(AdapterOptions):
    """Connection options shared by the ``sql``, ``sql-orders`` and ``sql-status`` adapters.

    Attributes:
        url: SQLAlchemy URL without a password, e.g.
            ``postgresql+psycopg://eyekiosk@127.0.0.1:5432/erp``. A relative SQLite
            path is resolved against the folder of the configuration file.
        password_env: name of the environment variable that contains the password.
        password_file: file whose content (without the trailing line break) is
            the password; a relative path is resolved against the configuration folder.
        connect_timeout: seconds to wait for a connection before failing.
        statement_timeout_s: seconds one statement may run before the database
            cancels it; 0 means no limit. PostgreSQL applies it to each
            statement (a streamed read is one statement per fetched chunk),
            MariaDB to each statement, MySQL to SELECT statements, and SQLite
            to the whole read or write.
    """

    # The URL is validated for passwords, and a rejected URL must not be echoed.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str
    password_env: str | None = None
    password_file: Path | None = None
    connect_timeout: PositiveInt = DEFAULT_CONNECT_TIMEOUT_S
    statement_timeout_s: float = Field(default=DEFAULT_STATEMENT_TIMEOUT_S, ge=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError(
                "the url is not a SQLAlchemy URL. Write it like "
                "postgresql+psycopg://user@host:5432/database"
            ) from None
        if parsed.password is not None or PASSWORD_QUERY_KEYS & {
            key.lower() for key in parsed.query
        }:
            raise ValueError(
                "the url contains a password. Remove it from the url and set password_env "
                "(the name of an environment variable) or password_file instead"
            )
        return url

    @model_validator(mode="after")
    def _one_password_source(self) -> DatabaseOptions:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("set password_env or password_file, not both")
        return self


class ErpColumnMap(ColumnMap):
    """Columns that hold the key, the quantity, the price and the warehouse.

    In query mode these are the names of the query's result columns.

    Attributes:
        warehouse: the warehouse or location column. When set, the quantities of
            each key are summed across its rows.
    """

    warehouse: str | None = None


class ErpDatabaseOptions(DatabaseOptions, ValueOptions):
    """Options of the ``sql`` adapter.

    The value options (``key_type``, ``key_case``, ``check_digit``,
    ``empty_quantity``, ``availability``, ``decimal``, ``thousands``,
    ``key_separator``) are those of ``adapters.normalise.ValueOptions``. A NULL
    cell counts as empty, and ``decimal`` and ``thousands`` apply to text
    columns only, because numeric columns are converted exactly.

    Attributes:
        table: table or view to read, optionally as ``schema.table``.
        query: SELECT statement to run instead of reading a table. Bind values
            with ``:name`` placeholders and give them in ``parameters``.
        parameters: values of the query's placeholders. A list binds as an
            expanding ``IN`` list: ``WHERE fk_entrepot IN :warehouses``.
        columns: which columns hold the key, quantity, price and warehouse.
        warehouses: read only rows whose warehouse column is one of these values,
            compared as text. Needs ``columns.warehouse``.
        label: name that rejected rows' locations start with; defaults to the
            table name, or ``query``.
        chunk_size: rows fetched from the server-side cursor at a time.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    table: str | None = None
    query: str | None = None
    parameters: dict[str, str | int | float | bool | list[str | int | float | bool]] = Field(
        default_factory=dict
    )
    columns: ErpColumnMap
    warehouses: list[str | int] | None = None
    label: str | None = None
    chunk_size: PositiveInt = DEFAULT_CHUNK_SIZE

    @model_validator(mode="after")
    def _check_combinations(self) -> ErpDatabaseOptions:
        if (self.table is None) == (self.query is None):
            raise ValueError("set either table or query")
        if self.query is not None:
            check_query_text(self.query, dialect=make_url(self.url).get_backend_name())
        if self.parameters and self.query is None:
            raise ValueError("parameters bind placeholders of a query; set query or remove them")
        if self.warehouses is not None and self.columns.warehouse is None:
            raise ValueError("warehouses filters on columns.warehouse; name that column")
        if self.warehouses is not None and not self.warehouses:
            raise ValueError("warehouses is empty, so no row would be read; list at least one")
        if ROW_KEY in read_columns(self):
            raise ValueError(f"{ROW_KEY!r} is a name this adapter uses itself; alias the column")
        return self


def read_columns(options: ErpDatabaseOptions) -> list[str]:
    """Return the columns the adapter reads, each once, in a stable order."""
    names = value_columns(options)
    if options.columns.warehouse is not None:
        names.append(options.columns.warehouse)
    return list(dict.fromkeys(names))


def check_query_text(query: str, *, dialect: str | None = None) -> None:
    """Raise ValueError unless the query is one statement that starts with a reading keyword.

    The read-only transaction is the real guard; these checks give a clear
    message for common mistakes before anything is sent.

    Args:
        query: the query text.
        dialect: SQLAlchemy backend name, such as ``mysql``. MySQL and MariaDB
            strings take backslash escapes, and other databases' strings do not.
    """
    body = _LEADING_COMMENTS.sub("", query, count=1)
    first = body.split(None, 1)[0].upper() if body.strip() else ""
    if first not in QUERY_KEYWORDS:
        raise ValueError(
            f"the query starts with {first or 'nothing'!r}, but it must read only: start it "
            f"with {', '.join(QUERY_KEYWORDS)}"
        )
    end = _second_statement(query, backslash_escapes=dialect in ("mysql", "mariadb"))
    if end is not None:
        line = query.count("\n", 0, end) + 1
        raise ValueError(
            f"the query has more than one statement: more SQL follows the ';' on line {line}. "
            f"Give a single SELECT statement and remove the ';' and what follows it"
        )


def _second_statement(query: str, *, backslash_escapes: bool) -> int | None:
    """Return the index of a ';' outside strings and comments that more SQL follows, or None."""
    index = 0
    while index < len(query):
        char = query[index]
        if query.startswith("--", index) or (char == "#" and backslash_escapes):
            newline = query.find("\n", index)
            index = len(query) if newline < 0 else newline + 1
        elif query.startswith("/*", index):
            close = query.find("*/", index + 2)
            index = len(query) if close < 0 else close + 2
        elif char in "'\"`":
            # PostgreSQL's E'...' strings take backslash escapes too.
            prefix = query[max(index - 2, 0) : index]
            escape_string = char == "'" and _ESCAPE_STRING_PREFIX.fullmatch(prefix) is not None
            index = _after_quoted(
                query, index, backslash_escapes=backslash_escapes or escape_string
            )
        elif char == "$" and not backslash_escapes and (tag := _DOLLAR_TAG.match(query, index)):
            close = query.find(tag.group(0), tag.end())
            index = len(query) if close < 0 else close + len(tag.group(0))
        elif char == ";":
            if not _ONLY_COMMENTS.fullmatch(query, index + 1):
                return index
            return None
        else:
            index += 1
    return None


def _after_quoted(query: str, start: int, *, backslash_escapes: bool) -> int:
    """Return the index after the string or quoted name that starts at ``start``."""
    quote = query[start]
    index = start + 1
    while index < len(query):
        char = query[index]
        if char == "\\" and backslash_escapes and quote != "`":
            index += 2
        elif char == quote and query.startswith(quote * 2, index):
            index += 2
        elif char == quote:
            return index + 1
        else:
            index += 1
    return len(query)


# Connections -------------------------------------------------------------------


@dataclass(slots=True)
class Database:
    """One database that an adapter connects to: its URL, password and engine.

    The engine is created on first use and disposed by ``close``.
    """

    options: DatabaseOptions
    config_dir: Path
    url: URL = field(init=False)
    _engine: Engine | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        url = make_url(self.options.url)
        if url.get_backend_name() == "sqlite":
            url = _resolve_sqlite_path(url, self.config_dir)
        password = _read_password(self.options, self.config_dir)
        self.url = url if password is None else url.set(password=password)

    @property
    def password(self) -> str | None:
        return self.url.password if isinstance(self.url.password, str) else None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    def display_url(self) -> str:
        """Return the URL with the password masked as ``***``."""
        return self.url.render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                self._engine = create_engine(
                    self.url,
                    pool_pre_ping=True,
                    connect_args=_connect_args(
                        self.dialect,
                        self.options.connect_timeout,
                        self.options.statement_timeout_s,
                    ),
                )
            except (ArgumentError, NoSuchModuleError) as error:
                raise ConfigError(
                    f"cannot use the database URL {self.display_url()}: {error}. "
                    f"Check the dialect and driver and that the driver is installed"
                ) from None
        return self._engine

    def check_sqlite_file(self, source: str) -> None:
        """Raise SourceError when a SQLite database file does not exist.

        SQLite would create an empty file instead, and the read would then fail
        with a confusing missing-table message.
        """
        database = self.url.database
        if self.dialect != "sqlite" or not database or database == ":memory:":
            return
        if database.startswith("file:"):
            return
        if not Path(database).is_file():
            raise SourceError(f"the SQLite database file {database} does not exist", source=source)

    def scrub(self, message: str) -> str:
        """Return the message with the password, if any, replaced by ``***``."""
        password = self.password
        return message.replace(password, "***") if password else message

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _resolve_sqlite_path(url: URL, config_dir: Path) -> URL:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    path = Path(database)
    return url if path.is_absolute() else url.set(database=str((config_dir / path).resolve()))


def _read_password(options: DatabaseOptions, config_dir: Path) -> str | None:
    if options.password_env is not None:
        password = os.environ.get(options.password_env)
        if password is None:
            raise ConfigError(
                f"the environment variable {options.password_env} named by password_env "
                f"is not set. Set it to the database password"
            )
        return password
    if options.password_file is not None:
        path = (config_dir / options.password_file).resolve()
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ConfigError(
                f"cannot read password_file {path}: {error.strerror}. "
                f"Create it with the database password, readable only by this service"
            ) from None
    return None


def _connect_args(dialect: str, timeout: int, statement_timeout_s: float) -> dict[str, Any]:
    if dialect in ("mysql", "mariadb") and statement_timeout_s > 0:
        read_timeout = math.ceil(statement_timeout_s) + READ_TIMEOUT_MARGIN_S
        return {"connect_timeout": timeout, "read_timeout": read_timeout}
    if dialect in ("postgresql", "mysql", "mariadb"):
        return {"connect_timeout": timeout}
    if dialect in ("sqlite", "mssql"):
        # sqlite3: seconds to wait for a lock; pyodbc: the login timeout.
        return {"timeout": timeout}
    return {}


def begin_read_only(connection: Connection, dialect: str) -> bool:
    """Start a read-only transaction on the connection where the database has one.

    Returns:
        Whether the transaction is read-only.
    """
    if dialect == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        return True
    if dialect in ("mysql", "mariadb"):
        connection.exec_driver_sql("START TRANSACTION READ ONLY")
        return True
    if dialect == "sqlite":
        connection.exec_driver_sql("PRAGMA query_only = ON")
        return True
    return False


class StatementTimeoutError(Exception):
    """A statement ran longer than ``statement_timeout_s``, so the database or driver stopped it.

    Args:
        seconds: the limit that was exceeded.
        message: the database's or driver's message.
    """

    def __init__(self, seconds: float, message: str) -> None:
        super().__init__(message)
        self.seconds = seconds

    def explain(self, work: str) -> str:
        """Return a sentence for the operator about ``work``, such as ``the query``."""
        return (
            f"{work} ran longer than statement_timeout_s = {self.seconds:g} seconds, so it "
            f"was cancelled. Look for a slow query or for locks that other sessions hold, "
            f"or raise statement_timeout_s (0 turns the limit off). The database said: {self}"
        )


@contextmanager
def statement_time_limit(connection: Connection, dialect: str, seconds: float) -> Iterator[None]:
    """Limit how long each statement on the connection may run, inside the current transaction.

    PostgreSQL gets ``SET LOCAL statement_timeout``, MariaDB the session's
    ``max_statement_time``, MySQL the session's ``max_execution_time`` (which
    limits SELECT only), and SQLite a progress handler that interrupts the
    connection once ``seconds`` have passed since the block began. Other
    databases get no limit. On PostgreSQL, call this after
    ``begin_read_only``, which must be the transaction's first statement.

    Args:
        connection: the connection, in a transaction on PostgreSQL.
        dialect: SQLAlchemy backend name.
        seconds: the limit; 0 sets none.

    Raises:
        StatementTimeoutError: when a statement in the block exceeded the limit.
    """
    if seconds <= 0:
        yield
        return

    expired = False
    sqlite_connection: Any = None
    if dialect == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {math.ceil(seconds * 1000)}")
    elif dialect in ("mysql", "mariadb") and getattr(connection.dialect, "is_mariadb", False):
        connection.exec_driver_sql(f"SET SESSION max_statement_time = {seconds:.3f}")
    elif dialect == "mysql":
        connection.exec_driver_sql(f"SET SESSION max_execution_time = {math.ceil(seconds * 1000)}")
    elif dialect == "sqlite":
        deadline = time.monotonic() + seconds

        def interrupt_after_deadline() -> int:
            nonlocal expired
            expired = time.monotonic() > deadline
            return int(expired)

        sqlite_connection = connection.connection.dbapi_connection
        sqlite_connection.set_progress_handler(interrupt_after_deadline, SQLITE_PROGRESS_STEPS)

    try:
        yield
    except DBAPIError as error:
        if expired or _is_statement_timeout(error):
            raise StatementTimeoutError(seconds, database_message(error)) from error
        raise
    finally:
        if sqlite_connection is not None:
            sqlite_connection.set_progress_handler(None, 0)


def _is_statement_timeout(error: DBAPIError) -> bool:
    original = error.orig
    if getattr(original, "sqlstate", None) == "57014":  # PostgreSQL query_canceled
        return "statement timeout" in str(original)
    args: tuple[Any, ...] = tuple(getattr(original, "args", ()))
    if not args:
        return False
    # MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT.
    if args[0] in (1969, 3024):
        return True
    # PyMySQL's read_timeout: CR_SERVER_LOST with "(timed out)".
    return args[0] == 2013 and "timed out" in str(args[1:])


def is_write_rejected(error: DBAPIError) -> bool:
    """Return whether the database rejected the statement because it writes."""
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate == "25006":  # PostgreSQL read_only_sql_transaction
        return True
    if sqlstate == "0A000" and "data-modifying" in str(original):
        # PostgreSQL refuses a server-side cursor over a data-modifying WITH.
        return True
    if getattr(original, "sqlite_errorname", None) == "SQLITE_READONLY":
        return True
    args: tuple[Any, ...] = tuple(getattr(original, "args", ()))
    return len(args) > 0 and args[0] == 1792  # MySQL ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION


def database_message(error: DBAPIError) -> str:
    """Return the first line of the database's own message, without the SQL."""
    original = error.orig if error.orig is not None else error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


# The adapter ---------------------------------------------------------------------


class ErpDatabaseSource(StockSource[ErpDatabaseOptions]):
    """Stock rows from an ERP database table or query (alias ``sql``)."""

    options_model = ErpDatabaseOptions

    def __init__(self, options: ErpDatabaseOptions, *, context: SourceContext) -> None:
        super().__init__(options, context=context)
        self.database = Database(options, context.config_dir)

    def describe(self) -> str:
        """Describe the source as ``sql <url without password> table <name>`` or ``… query``."""
        what = f"table {self.options.table}" if self.options.table else "query"
        return f"sql {self.database.display_url()} {what}"

    @property
    def label(self) -> str:
        """The name that rejected rows' locations start with."""
        return self.options.label or self.options.table or "query"

    def read(self) -> SourceResult:
        """Read the table or query once, retrying once if the connection drops.

        Returns:
            One row per key, the rejected rows in the order they were read, and
            ``total_rows``, the rows read after the warehouse filter.

        Raises:
            SourceError: when the database cannot be reached, the table or a
                column is missing, the query fails, or the query tries to write.
        """
        self.database.check_sqlite_file(self.describe())
        for attempt in (1, 2):
            try:
                with self._translated_errors():
                    raw = self._fetch()
                break
            except _ConnectionDropped as dropped:
                if attempt == 2:
                    raise SourceError(
                        f"the connection dropped again while reading, after one retry: "
                        f"{dropped}. Check the database server and the network",
                        source=self.describe(),
                    ) from dropped.__cause__
                log.warning(
                    "sql.reconnect source=%s attempt=%d reason=%s",
                    self.describe(),
                    attempt + 1,
                    dropped,
                )

        result = _build_result(raw, self.options, self.label)
        result.description = self.describe()
        log.info(
            "sql.read source=%s total=%d rows=%d rejected=%d",
            self.describe(),
            result.total_rows,
            len(result.rows),
            len(result.rejections),
        )
        return result

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.database.close()

    # Fetching ------------------------------------------------------------------

    def _fetch(self) -> _ReadRows:
        options = self.options
        raw = _RawCells(options)
        with self.database.engine.connect() as connection:
            if not begin_read_only(connection, self.database.dialect):
                log.info(
                    "sql.not_read_only source=%s dialect=%s reason=no_read_only_transaction",
                    self.describe(),
                    self.database.dialect,
                )
            dialect = self.database.dialect
            with statement_time_limit(connection, dialect, options.statement_timeout_s):
                statement, parameters = self._statement(connection)
                streaming = connection.execution_options(
                    stream_results=True, yield_per=options.chunk_size
                )
                result = streaming.execute(statement, parameters)
                try:
                    positions = self._positions(list(result.keys()))
                    for chunk in result.partitions():
                        raw.add_chunk(chunk, positions)
                finally:
                    result.close()
            connection.rollback()
        return raw.rows()

    def _statement(self, connection: Connection) -> tuple[Any, dict[str, Any]]:
        options = self.options
        if options.query is not None:
            statement = text(options.query)
            placeholders = statement.compile().params
            unused = [name for name in options.parameters if name not in placeholders]
            if unused:
                raise SourceError(
                    f"parameter {unused[0]!r} is not used in the query. Write :{unused[0]} "
                    f"where its value belongs, or remove it from parameters",
                    source=self.describe(),
                )
            for name, value in options.parameters.items():
                if isinstance(value, list):
                    statement = statement.bindparams(bindparam(name, expanding=True))
            return statement, dict(options.parameters)

        assert options.table is not None
        schema, _, name = options.table.rpartition(".")
        found = self._table_columns(connection, name, schema or None)
        names = [self._column_in(found, wanted) for wanted in read_columns(options)]
        source = table(name, *(column(n) for n in dict.fromkeys(names)), schema=schema or None)
        return select(*(source.c[n] for n in names)), {}

    def _table_columns(self, connection: Connection, name: str, schema: str | None) -> list[str]:
        try:
            return [c["name"] for c in inspect(connection).get_columns(name, schema=schema)]
        except NoSuchTableError:
            raise SourceError(
                f"table {self.options.table!r} was not found. Check the table option, "
                f"and the database or schema the URL connects to",
                source=self.describe(),
            ) from None

    def _column_in(self, found: list[str], wanted: str) -> str:
        if wanted in found:
            return wanted
        folded = [name for name in found if name.casefold() == wanted.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise SourceError(
            f"column {wanted!r} was not found in table {self.options.table!r}. Its columns "
            f"are {', '.join(found)}. Fix the name under [columns]",
            source=self.describe(),
        )

    def _positions(self, keys: list[str]) -> list[int]:
        wanted = read_columns(self.options)
        if self.options.table is not None:
            return list(range(len(wanted)))
        positions = []
        for name in wanted:
            matches = [i for i, key in enumerate(keys) if key == name] or [
                i for i, key in enumerate(keys) if key.casefold() == name.casefold()
            ]
            if len(matches) != 1:
                problem = "has no column" if not matches else "has more than one column"
                raise SourceError(
                    f"the query result {problem} named {name!r}. Its columns are "
                    f"{', '.join(keys)}. Fix the name under [columns] or alias the column "
                    f"in the query",
                    source=self.describe(),
                )
            positions.append(matches[0])
        return positions

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        """Turn SQLAlchemy and driver errors into SourceError, or _ConnectionDropped."""
        try:
            yield
        except StatementTimeoutError as error:
            message = self.database.scrub(error.explain("the query"))
            raise SourceError(message, source=self.describe()) from None
        except DBAPIError as error:
            message = self.database.scrub(database_message(error))
            if error.connection_invalidated or is_connection_lost(error):
                raise _ConnectionDropped(message) from error
            if is_write_rejected(error):
                raise SourceError(
                    f"the query tries to write to the database, which this adapter never "
                    f"does: it reads in a read-only transaction. Make the query a plain "
                    f"SELECT. The database said: {message}",
                    source=self.describe(),
                ) from None
            raise SourceError(f"the read failed: {message}", source=self.describe()) from None


# SQLSTATE classes of a lost session: 08 connection exception, 57P operator
# intervention (e.g. pg_terminate_backend). MySQL/MariaDB client error numbers:
# 2006 server gone away, 2013 lost connection, 1927 connection killed.
LOST_SQLSTATE_PREFIXES = ("08", "57P")
LOST_MYSQL_ERRORS = frozenset({2006, 2013, 1927})


def is_connection_lost(error: DBAPIError) -> bool:
    """Tell whether a driver error means the session is gone, even when SQLAlchemy did not.

    SQLAlchemy marks most disconnects as ``connection_invalidated``, but not
    every driver error raised while a server-side cursor fetches.
    """
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(LOST_SQLSTATE_PREFIXES):
        return True
    arguments: tuple[Any, ...] = tuple(getattr(original, "args", ()))
    return len(arguments) > 0 and arguments[0] in LOST_MYSQL_ERRORS


class _ConnectionDropped(Exception):
    """The connection was lost during a read; the read may be retried once."""


# Converting values -------------------------------------------------------------


def _quantity_text(values: Sequence[Any], decimal: str) -> pd.Series:
    """Write quantities as text; floats within FLOAT_NOISE_ULPS of a whole number as digits."""
    column = pd.Series(values, dtype=object)
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind not in ("floating", "mixed-integer-float"):
        return _with_decimal(cells_as_text(column.to_frame("value"))["value"], decimal, kind)
    numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
    rounded = np.round(numbers)
    snapped = np.where(_near(numbers, rounded), rounded, numbers)
    text = cells_as_text(pd.Series(snapped).to_frame("value"))["value"]
    return _with_decimal(text, decimal, kind)


def _price_text(values: Sequence[Any], decimal: str) -> pd.Series:
    """Write prices as text; floats within FLOAT_NOISE_ULPS of a two-place amount with two places.

    Other floats keep Python's ``repr``, which has more than two places (or an
    exponent), so the value parser rejects them.
    """
    column = pd.Series(values, dtype=object)
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind not in ("floating", "mixed-integer-float"):
        return _with_decimal(cells_as_text(column.to_frame("value"))["value"], decimal, kind)
    numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        cents = np.round(numbers * 100)
        exact = _near(numbers, cents / 100) & np.isfinite(numbers) & (np.abs(cents) < 2**53)
    text = np.full(len(numbers), "", dtype=object)
    if exact.any():
        text[exact] = [f"{value:.2f}" for value in cents[exact] / 100]
    other = np.isfinite(numbers) & ~exact
    if other.any():
        text[other] = [repr(float(value)) for value in numbers[other]]
    return _with_decimal(pd.Series(text, dtype=STRING_DTYPE), decimal, kind)


def _with_decimal(text: pd.Series, decimal: str, kind: str) -> pd.Series:
    """Write the decimal point of numbers as the configured separator; text stays as it is."""
    if decimal == "." or kind in ("string", "empty", "mixed", "bytes"):
        return text.astype(STRING_DTYPE)
    return text.str.replace(".", decimal, regex=False).astype(STRING_DTYPE)


def _near(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Return where each value is within FLOAT_NOISE_ULPS units in the last place of its target."""
    with np.errstate(invalid="ignore"):
        near: np.ndarray = np.abs(values - targets) <= FLOAT_NOISE_ULPS * np.spacing(np.abs(values))
    return near


class _RawCells:
    """Rows fetched so far as text cells, one compact frame per chunk.

    Each chunk is filtered by warehouse and converted to text as it arrives, so
    the driver's row objects of one chunk at a time are in memory. Beside the
    cells it keeps each row's 1-based number in the query result and the
    problems found in its raw values.
    """

    def __init__(self, options: ErpDatabaseOptions) -> None:
        self.options = options
        self.names = read_columns(options)
        self.warehouses = (
            None if options.warehouses is None else {str(w) for w in options.warehouses}
        )
        self.chunks: list[pd.DataFrame] = []
        self.numbers: list[np.ndarray] = []
        self.problems: list[pd.Series] = []
        self.read = 0

    def add_chunk(self, chunk: Sequence[Any], positions: list[int]) -> None:
        """Filter one chunk by warehouse and convert its values to text."""
        if not chunk:
            return
        transposed = list(zip(*chunk, strict=True))
        values: dict[str, Sequence[Any]] = {
            name: transposed[p] for name, p in zip(self.names, positions, strict=True)
        }
        numbers = np.arange(self.read + 1, self.read + len(chunk) + 1)
        self.read += len(chunk)
        warehouse = self.options.columns.warehouse
        if warehouse is not None and self.warehouses is not None:
            keep = [str(w) in self.warehouses for w in values[warehouse]]
            values = {
                name: [v for v, k in zip(column, keep, strict=True) if k]
                for name, column in values.items()
            }
            numbers = numbers[np.array(keep, dtype=bool)]

        columns = self.options.columns
        decimal = self.options.decimal
        problems = pd.Series(pd.NA, index=range(len(numbers)), dtype=STRING_DTYPE)
        cells: dict[str, pd.Series] = {}
        for name, cell_values in values.items():
            if name in (columns.quantity, columns.price):
                # The row is rejected with the reason found here. A neutral value in its
                # place keeps the value parser from adding a misleading "quantity is empty".
                is_quantity = name == columns.quantity
                field_name, neutral = ("quantity", 0) if is_quantity else ("price", None)
                cell_values, found = _non_finite(cell_values, field_name, neutral)
                problems = problems.where(problems.notna(), found).astype(STRING_DTYPE)
            if name == columns.quantity:
                cells[name] = _quantity_text(cell_values, decimal)
            elif name == columns.price:
                cells[name] = _price_text(cell_values, decimal)
            else:
                frame = pd.Series(cell_values, dtype=object).to_frame("value")
                cells[name] = cells_as_text(frame)["value"]
        self.chunks.append(pd.DataFrame(cells))
        self.numbers.append(numbers)
        self.problems.append(problems)

    def frame(self) -> pd.DataFrame:
        if not self.chunks:
            return pd.DataFrame({name: pd.Series([], dtype=STRING_DTYPE) for name in self.names})
        return pd.concat(self.chunks, ignore_index=True)

    def rows(self) -> _ReadRows:
        """Return the cells, row numbers and problems of every chunk so far."""
        if not self.chunks:
            return _ReadRows(self.frame(), np.array([], dtype=int), _no_problems(0))
        problems = pd.concat(self.problems, ignore_index=True).astype(STRING_DTYPE)
        return _ReadRows(self.frame(), np.concatenate(self.numbers), problems)


@dataclass(slots=True)
class _ReadRows:
    """The rows read, after the warehouse filter.

    Attributes:
        cells: the text cells, one row per row read.
        numbers: each row's 1-based number in the query result.
        problems: a rejection reason found in the raw values, <NA> where there is none.
    """

    cells: pd.DataFrame
    numbers: np.ndarray
    problems: pd.Series


def _no_problems(length: int) -> pd.Series:
    return pd.Series(pd.NA, index=range(length), dtype=STRING_DTYPE)


def _non_finite(
    values: Sequence[Any], name: str, neutral: int | None
) -> tuple[list[Any], pd.Series]:
    """Find NaN and infinite numbers, which float and some numeric columns can store.

    Returns:
        The values with each NaN or infinity replaced by ``neutral``, and the
        reason per value, <NA> where the value is finite or not a number type.
    """
    cleaned = list(values)
    reasons = _no_problems(len(cleaned))
    for position, value in enumerate(cleaned):
        if isinstance(value, float):
            nan, infinite = math.isnan(value), math.isinf(value)
        elif isinstance(value, Decimal):
            nan, infinite = value.is_nan(), value.is_infinite()
        else:
            continue
        if nan:
            reasons.iloc[position] = f"{name} is NaN, which is not a number."
        elif infinite:
            reasons.iloc[position] = f"{name} is infinite ({value})."
        else:
            continue
        cleaned[position] = neutral
    return cleaned, reasons


# Building the result -------------------------------------------------------------


def _build_result(read: _ReadRows, options: ErpDatabaseOptions, label: str) -> SourceResult:
    """Parse the cells into one row per key, summing warehouse rows when mapped."""
    cells = read.cells
    labelled = [f"{name}=" + cells[name] for name in options.columns.key_columns()]
    joined = labelled[0]
    for part in labelled[1:]:
        joined = joined + " " + part
    raw_keys: list[str] = joined.tolist()

    if options.columns.warehouse is not None:
        rows, rejections = _sum_warehouse_rows(read, options, raw_keys, label)
        return SourceResult(rows=rows, rejections=rejections, total_rows=len(cells))

    # A key on several rows gets the row number in its locations, so they differ.
    repeated = joined.duplicated(keep=False).to_numpy(dtype=bool)

    def locate(positions: Sequence[int]) -> list[str]:
        return [
            _location(label, raw_keys[p], int(read.numbers[p]), with_row=bool(repeated[p]))
            for p in positions
        ]

    def cite(positions: Sequence[int]) -> str:
        return "rows " + join_limited([str(read.numbers[p]) for p in positions])

    rows, rejections = normalise_cells(
        cells, options, locate=locate, cite=cite, reasons=read.problems, adapter="sql"
    )
    return SourceResult(rows=rows, rejections=rejections, total_rows=len(cells))


def _location(label: str, raw_key: str, number: int, *, with_row: bool = False) -> str:
    """Return ``<label> <key column>=<key>``, with ``at row <number>`` when asked.

    A row without a key is ``<label> row <number>``.
    """
    if raw_key.endswith("=") and " " not in raw_key:
        return f"{label} row {number}"
    if with_row:
        return f"{label} {raw_key} at row {number}"
    return f"{label} {raw_key}"


def _sum_warehouse_rows(
    read: _ReadRows,
    options: ErpDatabaseOptions,
    raw_keys: list[str],
    label: str,
) -> tuple[pd.DataFrame, list[Rejection]]:
    """Check each row, sum each key's quantities, then normalise the keys.

    Step 1 parses quantity and price per row under a unique row number as key.
    Step 2 groups rows by their raw key: a rejected row rejects its whole key,
    and the rows of a key must agree on the price. A key gets one rejection,
    at its first row, that gives every reason. Step 3 gives one row per
    remaining key, with the summed quantity, to ``normalise_cells``, which
    checks the key and the sum and collapses keys that normalise to the same value.
    """
    cells = read.cells
    columns = options.columns
    warehouse = columns.warehouse
    first_key = cells[columns.key_columns()[0]].str.strip()

    def locate_key(positions: Sequence[int]) -> list[str]:
        return [_location(label, raw_keys[p], int(read.numbers[p])) for p in positions]

    def locate_row(positions: Sequence[int]) -> list[str]:
        return [
            f"row {read.numbers[p]} ({warehouse}={cells[warehouse].iloc[p]})" for p in positions
        ]

    # Step 1: per-row values.
    row_cells = pd.DataFrame(
        {
            ROW_KEY: pd.Series(np.arange(len(cells)).astype(str), dtype=STRING_DTYPE),
            **{
                name: cells[name]
                for name in value_columns(options)
                if name not in columns.key_columns()
            },
        }
    )
    row_options = options.model_copy(
        update={
            "columns": ColumnMap(key=ROW_KEY, quantity=columns.quantity, price=columns.price),
            "key_type": "sku",
            "key_case": "keep",
        }
    )
    per_row, rejected = _normalise(row_cells, row_options, locate_row, reasons=read.problems)

    # Step 2: group by raw key, and reject each key with problems once.
    frame = pd.DataFrame({"raw": raw_keys, "position": np.arange(len(cells))})
    values = per_row.assign(position=per_row[KEY].astype(int)).set_index("position")
    frame = frame.join(values[[QUANTITY, PRICE_CENTS]], on="position")
    frame["rejected"] = frame["position"].isin(list(rejected))
    groups = frame.groupby("raw", sort=False)
    summary = groups.agg(
        first=("position", "first"),
        rows=("position", "size"),
        rejected=("rejected", "any"),
        quantity=(QUANTITY, "sum"),
        prices=(PRICE_CENTS, "nunique"),
        price=(PRICE_CENTS, "first"),
    )
    found: dict[int, Rejection] = {}
    for raw, group in groups:
        row = summary.loc[raw]
        reasons = []
        if row["rejected"]:
            bad = [rejected[p] for p in group["position"] if p in rejected]
            listed = " ".join(f"{r.location}: {r.reason}" for r in bad)
            reasons.append(
                f"{len(bad)} of its {row['rows']} rows were rejected, so its quantities "
                f"cannot be summed. {listed}"
            )
        if row["prices"] > 1:
            reasons.append(
                f"The rows of this key have {row['prices']} different prices. Give every "
                f"row the product's price."
            )
        if reasons:
            first = int(row["first"])
            key = first_key.iloc[first] or None
            found[first] = Rejection(locate_key([first])[0], " ".join(reasons), key)
    summary = summary[~summary["rejected"] & (summary["prices"] <= 1)]

    # Step 3: one row per key, with the sum, through the value parser.
    firsts = summary["first"].to_numpy()
    summed = pd.DataFrame(
        {name: cells[name].iloc[firsts].reset_index(drop=True) for name in value_columns(options)}
    )
    summed[columns.quantity] = pd.Series(
        summary["quantity"].astype("int64").astype(str).to_numpy(), dtype=STRING_DTYPE
    )
    if columns.price is not None:
        summed[columns.price] = pd.Series(
            [_cents_text(value, options.decimal) for value in summary["price"]],
            dtype=STRING_DTYPE,
        )
    rows, key_rejections = _normalise(
        summed, options, lambda positions: locate_key([int(firsts[p]) for p in positions])
    )

    # A key's rejection is reported at the key's first row.
    for position, rejection in key_rejections.items():
        found[int(firsts[position])] = rejection
    return rows, [found[p] for p in sorted(found)]


def _normalise(
    cells: pd.DataFrame, options: ValueOptions, locate: Locate, reasons: pd.Series | None = None
) -> tuple[pd.DataFrame, dict[int, Rejection]]:
    """Call ``normalise_cells`` and return the rejections by row position.

    ``normalise_cells`` calls ``locate`` once with the rejected positions in
    ascending order and reports one rejection per position in that order.
    """
    located: list[int] = []

    def remember(positions: Sequence[int]) -> list[str]:
        located.extend(int(p) for p in positions)
        return locate(positions)

    rows, rejections = normalise_cells(
        cells, options, locate=remember, reasons=reasons, adapter="sql"
    )
    return rows, dict(zip(located, rejections, strict=True))


def _cents_text(cents: Any, decimal: str) -> str:
    if pd.isna(cents):
        return ""
    whole, part = divmod(int(cents), 100)
    return f"{whole}{decimal}{part:02d}"


__all__ = [
    "Database",
    "DatabaseOptions",
    "ErpColumnMap",
    "ErpDatabaseOptions",
    "ErpDatabaseSource",
    "StatementTimeoutError",
    "begin_read_only",
    "check_query_text",
    "database_message",
    "is_write_rejected",
    "read_columns",
    "statement_time_limit",
]
