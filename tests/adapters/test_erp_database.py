"""Tests of the ERP database stock adapter (alias ``sql``) on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine, make_url, text

from adapters.base import KEY, PRICE_CENTS, QUANTITY, SourceContext, SourceResult
from adapters.erp_database import ErpDatabaseSource
from sync.errors import ConfigError, SourceError
from sync.sandbox import SandboxServer
from tests.adapters.erp_schemas import (
    DOLIBARR_STOCK_QUERY,
    DOLIBARR_VIEW,
    ERPNEXT_WAREHOUSES,
    ODOO_STOCK_QUERY,
    expected_stock,
    load_dolibarr,
    load_erpnext,
    load_odoo,
    sample_products,
)
from tests.databases import mariadb_database, postgres_database
from tests.sync.harness import Installation

DIALECTS = ["sqlite", "postgresql", "mariadb"]
PRODUCTS = sample_products(300)


def open_database(dialect: str, tmp_path: Path) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'erp.db'}"
    elif dialect == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        with mariadb_database() as url:
            yield url


@pytest.fixture(params=DIALECTS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind; PostgreSQL and MariaDB ones are dropped afterwards."""
    yield from open_database(request.param, tmp_path)


@pytest.fixture(params=DIALECTS)
def dolibarr(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database holding Dolibarr's llx_product and llx_product_stock with sample products."""
    for url in open_database(request.param, tmp_path):
        load_dolibarr(url, PRODUCTS)
        yield url


@pytest.fixture
def postgres_dolibarr() -> Iterator[str]:
    with postgres_database() as url:
        load_dolibarr(url, PRODUCTS)
        yield url


@pytest.fixture
def mariadb_dolibarr() -> Iterator[str]:
    with mariadb_database() as url:
        load_dolibarr(url, PRODUCTS)
        yield url


def source(options: dict[str, Any], tmp_path: Path | None = None) -> ErpDatabaseSource:
    folder = tmp_path or Path.cwd()
    context = SourceContext(job="test", config_dir=folder, state_dir=folder)
    adapter = ErpDatabaseSource.from_mapping(options, context=context)
    assert isinstance(adapter, ErpDatabaseSource)
    return adapter


def read(options: dict[str, Any]) -> SourceResult:
    adapter = source(options)
    try:
        return adapter.read()
    finally:
        adapter.close()


def as_dict(result: SourceResult) -> dict[str, tuple[int, int | None]]:
    rows = result.rows
    return {
        str(k): (int(q), None if p is None or str(p) == "<NA>" else int(p))
        for k, q, p in zip(rows[KEY], rows[QUANTITY], rows[PRICE_CENTS], strict=True)
    }


def execute(url: str, *statements: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def dolibarr_query(url: str, warehouses: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "url": url,
        "query": DOLIBARR_STOCK_QUERY,
        "parameters": {"warehouses": warehouses},
        "label": "llx_product",
        "columns": {"key": "ref", "quantity": "reel", "price": "price", "warehouse": "fk_entrepot"},
        **extra,
    }


# Dolibarr --------------------------------------------------------------------------


def test_dolibarr_query_sums_named_warehouses(dolibarr: str) -> None:
    """A query over llx_product and llx_product_stock sums the stock of warehouses 1 and 2."""
    result = read(dolibarr_query(dolibarr, [1, 2], chunk_size=50))

    assert result.rejections == []
    assert as_dict(result) == expected_stock(PRODUCTS, (1, 2))
    assert result.rows[KEY].is_unique
    assert str(result.rows[QUANTITY].dtype) == "Int64"
    assert str(result.rows[PRICE_CENTS].dtype) == "Int64"


def test_dolibarr_view_table_mapping_filters_warehouses(dolibarr: str) -> None:
    """A table mapping with a warehouse column reads only the listed warehouses and sums them."""
    execute(dolibarr, DOLIBARR_VIEW)

    result = read(
        {
            "url": dolibarr,
            "table": "eyekiosk_stock",
            "columns": {
                "key": "ref",
                "quantity": "reel",
                "price": "price",
                "warehouse": "fk_entrepot",
            },
            "warehouses": [1, "3"],
        }
    )

    assert result.rejections == []
    assert as_dict(result) == expected_stock(PRODUCTS, (1, 3))


def test_dolibarr_product_table_with_barcode_key(dolibarr: str) -> None:
    """llx_product alone gives the denormalised stock per barcode, as GTIN-14."""
    result = read(
        {
            "url": dolibarr,
            "table": "llx_product",
            "key_type": "barcode",
            "columns": {"key": "barcode", "quantity": "stock", "price": "price"},
        }
    )

    assert result.rejections == []
    assert len(result.rows) == len(PRODUCTS)
    first = PRODUCTS[0]
    assert as_dict(result)["0" + first.barcode] == (first.on_hand, int(first.price * 100))


def test_dolibarr_fractional_quantity_rejects_key(dolibarr: str) -> None:
    """A floating quantity of 2.5 rejects its key at 'llx_product ref=…'; 3.0 reads as 3."""
    execute(
        dolibarr,
        "UPDATE llx_product_stock SET reel = 2.5 WHERE fk_product = 1 AND fk_entrepot = 1",
        "UPDATE llx_product_stock SET reel = 3.0 WHERE fk_product = 2 AND fk_entrepot = 1",
    )

    result = read(dolibarr_query(dolibarr, [1, 2]))

    ref1, ref2 = PRODUCTS[0].ref, PRODUCTS[1].ref
    assert ref1 not in as_dict(result)
    assert as_dict(result)[ref2][0] == 3 + PRODUCTS[1].stock[2]
    assert [r.location for r in result.rejections] == [f"llx_product ref={ref1}"]
    reason = result.rejections[0].reason
    assert reason.startswith("1 of its 2 rows were rejected, so its quantities cannot be summed.")
    assert "(fk_entrepot=1): quantity '2.5' is not a whole number" in reason
    assert "another row" not in reason
    assert result.rejections[0].key == ref1


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("288.99", 28899),
        ("0.1 + 0.2", 30),
        ("12.345", None),
        ("288.99000001", None),
        ("-5", None),
    ],
    ids=["two-places", "float-noise", "three-places", "eighth-place", "negative"],
)
def test_dolibarr_double_price_rule(tmp_path: Path, price: str, expected: int | None) -> None:
    """double(24,8) prices read as cents only when within float noise of a two-place amount."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    load_dolibarr(url, PRODUCTS[:3])
    execute(url, f"UPDATE llx_product SET price = {price} WHERE rowid = 1")  # noqa: S608 - fixed test values

    result = read(
        {
            "url": url,
            "table": "llx_product",
            "columns": {"key": "ref", "quantity": "stock", "price": "price"},
        }
    )

    ref = PRODUCTS[0].ref
    if expected is None:
        assert ref not in as_dict(result)
        assert [r.location for r in result.rejections] == [f"llx_product ref={ref}"]
    else:
        assert as_dict(result)[ref][1] == expected
        assert result.rejections == []


def test_warehouse_key_gets_one_rejection_with_all_reasons(tmp_path: Path) -> None:
    """A key with a bad row and differing prices gets one rejection that gives every reason."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    execute(
        url,
        "CREATE TABLE stock (ref TEXT, wh INTEGER, qty REAL, price REAL)",
        "INSERT INTO stock VALUES ('A-6', 1, -1, 10.00), ('A-6', 2, 2, 10.00), "
        "('A-6', 3, 1, 12.00), ('A-7', 1, 1, 5.00)",
    )

    result = read(
        {
            "url": url,
            "table": "stock",
            "columns": {"key": "ref", "quantity": "qty", "price": "price", "warehouse": "wh"},
        }
    )

    assert as_dict(result) == {"A-7": (1, 500)}
    assert [r.location for r in result.rejections] == ["stock ref=A-6"]
    reason = result.rejections[0].reason
    assert "1 of its 3 rows were rejected" in reason
    assert "row 1 (wh=1): quantity '-1'" in reason
    assert "2 different prices" in reason


def test_duplicate_key_locations_name_rows(tmp_path: Path) -> None:
    """Rows of one key with different values are rejected at distinct locations with row numbers."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    execute(
        url,
        "CREATE TABLE t (ref TEXT, qty INTEGER)",
        "INSERT INTO t VALUES ('A-5', 1), ('A-6', 2), ('A-7', 3), ('A-6', 4)",
    )

    result = read({"url": url, "table": "t", "columns": {"key": "ref", "quantity": "qty"}})

    assert as_dict(result) == {"A-5": (1, None), "A-7": (3, None)}
    locations = [r.location for r in result.rejections]
    assert locations == ["t ref=A-6 at row 2", "t ref=A-6 at row 4"]
    assert "appears on 2 rows (rows 2, 4)" in result.rejections[0].reason


def test_non_finite_float_quantity_and_price_named() -> None:
    """NaN and infinite floats are rejected as not a number or infinite, not as empty."""
    with postgres_database() as url:
        execute(
            url,
            "CREATE TABLE t (ref text, qty float8, price float8)",
            "INSERT INTO t VALUES ('A-1', 'NaN', 1), ('A-2', 'Infinity', 1), "
            "('A-3', 2, 'NaN'), ('A-4', 2, '-Infinity'), ('A-5', 3, 4.5)",
        )

        result = read(
            {
                "url": url,
                "table": "t",
                "columns": {"key": "ref", "quantity": "qty", "price": "price"},
            }
        )

    assert as_dict(result) == {"A-5": (3, 450)}
    reasons = {r.location: r.reason for r in result.rejections}
    assert reasons == {
        "t ref=A-1": "quantity is NaN, which is not a number.",
        "t ref=A-2": "quantity is infinite (inf).",
        "t ref=A-3": "price is NaN, which is not a number.",
        "t ref=A-4": "price is infinite (-inf).",
    }


# Odoo and ERPNext -------------------------------------------------------------------


def test_odoo_counts_internal_locations_only() -> None:
    """Odoo 16 quants sum over internal locations; customer and inventory locations are left out."""
    with postgres_database() as url:
        load_odoo(url, PRODUCTS)

        result = read(
            {
                "url": url,
                "query": ODOO_STOCK_QUERY,
                "label": "product_product",
                "columns": {
                    "key": "default_code",
                    "quantity": "quantity",
                    "price": "list_price",
                    "warehouse": "location_id",
                },
            }
        )

    assert result.rejections == []
    assert as_dict(result) == expected_stock(PRODUCTS, (1, 2))


def test_erpnext_bin_sums_named_warehouses() -> None:
    """ERPNext tabBin rows of the named warehouses are summed per item code, without a price."""
    with mariadb_database() as url:
        load_erpnext(url, PRODUCTS)

        result = read(
            {
                "url": url,
                "table": "tabBin",
                "columns": {
                    "key": "item_code",
                    "quantity": "actual_qty",
                    "warehouse": "warehouse",
                },
                "warehouses": [ERPNEXT_WAREHOUSES[1], ERPNEXT_WAREHOUSES[2]],
            }
        )

    assert result.rejections == []
    expected = expected_stock(PRODUCTS, (1, 2))
    assert as_dict(result) == {ref: (quantity, None) for ref, (quantity, _) in expected.items()}


# Read-only transactions -------------------------------------------------------------

WRITE_ATTEMPTS = {
    "sqlite": (
        "WITH doomed AS (SELECT rowid FROM llx_product) DELETE FROM llx_product "
        "WHERE rowid IN (SELECT rowid FROM doomed) RETURNING ref, stock, price"
    ),
    "postgresql": "SELECT ref, stock, price, nextval('llx_product_rowid_seq') FROM llx_product",
    "mariadb": "SELECT ref, stock, price, eyekiosk_bump() AS bumped FROM llx_product",
}
MARIADB_WRITING_FUNCTION = """
CREATE FUNCTION eyekiosk_bump() RETURNS INT MODIFIES SQL DATA
BEGIN
  UPDATE llx_product SET stock = stock + 1;
  RETURN 1;
END
"""


def test_write_attempt_fails_in_read_only_transaction(dolibarr: str) -> None:
    """A query that passes the SELECT check but writes fails with a SourceError; nothing changes."""
    dialect = create_engine(dolibarr).dialect.name
    dialect = "mariadb" if dialect == "mysql" else dialect
    if dialect == "mariadb":
        execute(dolibarr, MARIADB_WRITING_FUNCTION)

    with pytest.raises(SourceError, match="tries to write to the database") as caught:
        read(
            {
                "url": dolibarr,
                "query": WRITE_ATTEMPTS[dialect],
                "columns": {"key": "ref", "quantity": "stock", "price": "price"},
            }
        )

    assert "read-only transaction" in str(caught.value)
    engine = create_engine(dolibarr)
    with engine.connect() as connection:
        total = connection.execute(text("SELECT SUM(stock) FROM llx_product")).scalar()
        count = connection.execute(text("SELECT COUNT(*) FROM llx_product")).scalar()
    engine.dispose()
    assert count == len(PRODUCTS)
    assert int(total) == sum(p.on_hand for p in PRODUCTS)


def test_query_starting_with_delete_is_invalid() -> None:
    """A query that does not start with SELECT, WITH, VALUES or TABLE fails validation."""
    with pytest.raises(ValidationError, match="must read only"):
        source(
            {
                "url": "sqlite:///erp.db",
                "query": "-- clean up\nDELETE FROM llx_product RETURNING ref, stock",
                "columns": {"key": "ref", "quantity": "stock"},
            }
        )


@pytest.mark.parametrize(
    ("query", "dialect_url"),
    [
        ("SELECT ref, stock FROM llx_product; DELETE FROM llx_product", "sqlite:///erp.db"),
        ("SELECT ref, stock FROM llx_product;\n-- done\nDROP TABLE x;", "sqlite:///erp.db"),
        (
            "SELECT ref, stock FROM llx_product WHERE ref <> 'a\\'; x'; DELETE FROM t",
            "mysql+pymysql://erp@127.0.0.1/erp",
        ),
    ],
    ids=["delete", "after-comment", "mysql-escaped-quote"],
)
def test_query_with_second_statement_is_invalid(query: str, dialect_url: str) -> None:
    """A ';' followed by another statement outside strings and comments fails validation."""
    with pytest.raises(ValidationError, match="more than one statement"):
        source({"url": dialect_url, "query": query, "columns": {"key": "ref", "quantity": "stock"}})


@pytest.mark.parametrize(
    "query",
    [
        "SELECT ref, stock FROM llx_product;",
        "SELECT ref, stock FROM llx_product; -- trailing comment",
        "SELECT ref, stock FROM llx_product WHERE ref <> ';x' /* ; DELETE */",
        "SELECT ref, stock FROM llx_product WHERE ref <> $$;DELETE$$",
        'SELECT ref, stock AS "a;b" FROM llx_product',
    ],
    ids=["trailing-semicolon", "trailing-comment", "in-string", "dollar-quote", "quoted-name"],
)
def test_query_semicolon_inside_text_is_valid(query: str) -> None:
    """A ';' at the end, or inside a string, quoted name or comment, is accepted."""
    adapter = source(
        {
            "url": "postgresql+psycopg://erp@127.0.0.1/erp",
            "query": query,
            "columns": {"key": "ref", "quantity": "stock"},
        }
    )

    assert adapter.options.query == query


def test_second_statement_not_sent_to_postgresql(postgres_dolibarr: str) -> None:
    """Two statements for PostgreSQL fail validation with a clear message, before any connection."""
    with pytest.raises(ValidationError, match="more SQL follows the ';' on line 1"):
        source(
            {
                "url": postgres_dolibarr,
                "query": "SELECT ref, stock FROM llx_product; DELETE FROM llx_product",
                "columns": {"key": "ref", "quantity": "stock"},
            }
        )


# Statement timeout -------------------------------------------------------------------

SLEEPING_QUERIES = {
    "postgresql": "SELECT ref, stock FROM llx_product, pg_sleep(5)",
    "mariadb": "SELECT ref, stock FROM llx_product, (SELECT SLEEP(5) AS pause) z",
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) "
        "SELECT 'A-1' AS ref, COUNT(*) AS stock FROM n"
    ),
}


def test_statement_timeout_cancels_slow_query(dolibarr: str) -> None:
    """A query that runs past statement_timeout_s is cancelled with an error naming the option."""
    dialect = create_engine(dolibarr).dialect.name
    dialect = "mariadb" if dialect == "mysql" else dialect
    started = time.monotonic()

    with pytest.raises(SourceError, match=r"ran longer than statement_timeout_s = 1 seconds"):
        read(
            {
                "url": dolibarr,
                "query": SLEEPING_QUERIES[dialect],
                "statement_timeout_s": 1,
                "columns": {"key": "ref", "quantity": "stock"},
            }
        )
    assert time.monotonic() - started < 4


def test_statement_timeout_zero_means_none(tmp_path: Path) -> None:
    """statement_timeout_s = 0 sets no limit, so a query that takes a while still finishes."""
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    load_dolibarr(url, PRODUCTS[:3])
    query = SLEEPING_QUERIES["sqlite"].replace("100000000", "300000")

    result = read(
        {
            "url": url,
            "query": query,
            "statement_timeout_s": 0,
            "columns": {"key": "ref", "quantity": "stock"},
        }
    )

    assert as_dict(result) == {"A-1": (300000, None)}


# Errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"table": "llx_produit"}, "table 'llx_produit' was not found"),
        (
            {"table": "llx_product", "columns": {"key": "reff", "quantity": "stock"}},
            "column 'reff' was not found in table 'llx_product'",
        ),
        (
            {
                "query": "SELECT ref, stock FROM llx_product",
                "columns": {"key": "ref", "quantity": "qty"},
            },
            "the query result has no column named 'qty'",
        ),
        ({"query": "SELECT ref, stock FROM llx_produit"}, "llx_produit"),
    ],
    ids=["missing-table", "missing-column", "missing-result-column", "query-missing-table"],
)
def test_missing_table_or_column_names_it(dolibarr: str, options: dict, message: str) -> None:
    """A missing table or column is a SourceError whose message names it."""
    settings = {"url": dolibarr, "columns": {"key": "ref", "quantity": "stock"}, **options}

    with pytest.raises(SourceError, match=message):
        read(settings)


def test_url_with_password_is_rejected_without_echo() -> None:
    """A password in the url fails validation, and the error does not repeat the password."""
    with pytest.raises(ValidationError) as caught:
        source(
            {
                "url": "postgresql+psycopg://erp:hunter2secret@127.0.0.1/erp",
                "table": "llx_product",
                "columns": {"key": "ref", "quantity": "stock"},
            }
        )

    assert "contains a password" in str(caught.value)
    assert "hunter2secret" not in str(caught.value)


def test_missing_password_variable_is_config_error(tmp_path: Path) -> None:
    """password_env naming an unset variable is a ConfigError that names the variable."""
    with pytest.raises(ConfigError, match="EYEKIOSK_TEST_UNSET_PASSWORD"):
        source(
            {
                "url": "sqlite:///erp.db",
                "password_env": "EYEKIOSK_TEST_UNSET_PASSWORD",
                "table": "llx_product",
                "columns": {"key": "ref", "quantity": "stock"},
            },
            tmp_path,
        )


def test_password_never_in_description_logs_or_errors(
    postgres_dolibarr: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The password from password_env appears in no description, log line or error."""
    secret = "s3cret-Password-4711"
    monkeypatch.setenv("ERP_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    options = dolibarr_query(postgres_dolibarr, [1], password_env="ERP_PASSWORD")
    adapter = source(options)

    result = adapter.read()
    broken = source({**options, "query": "SELECT ref, reel FROM llx_missing", "parameters": {}})
    with pytest.raises(SourceError) as caught:
        broken.read()
    adapter.close()
    broken.close()

    assert len(result.rows) == len(PRODUCTS)
    assert "***" in adapter.describe()
    for text_seen in (adapter.describe(), result.description, str(caught.value), caplog.text):
        assert secret not in text_seen


# Dropped connections ----------------------------------------------------------------


class Terminator(threading.Thread):
    """Kill the first server session that runs a marked query, from another connection."""

    def __init__(self, url: str, find: str, kill: str) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.find, self.kill = find, kill
        self.killed: list[Any] = []

    def run(self) -> None:
        deadline = time.monotonic() + 20
        with self.engine.connect() as connection:
            while time.monotonic() < deadline:
                target = connection.execute(text(self.find)).scalar()
                if target is not None:
                    connection.execute(text(self.kill.format(target=int(target))))
                    self.killed.append(target)
                    return
                time.sleep(0.05)

    def stop(self) -> None:
        self.join(timeout=30)
        self.engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_dropped_connection_is_retried_once(
    dialect: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    """A session killed by the server mid-read is read again on a new connection, with a warning."""
    url = request.getfixturevalue(
        "postgres_dolibarr" if dialect == "postgresql" else "mariadb_dolibarr"
    )
    if dialect == "postgresql":
        query = DOLIBARR_STOCK_QUERY.replace(
            "FROM llx_product p", "FROM (SELECT pg_sleep(1) AS pause) z, llx_product p"
        )
        # The server-side cursor runs the query on FETCH, so find the session by name.
        url = str(make_url(url).update_query_dict({"application_name": "eyekiosk-reconnect"}))
        find = (
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'eyekiosk-reconnect' "
            "AND state = 'active' AND pid <> pg_backend_pid()"
        )
        kill = "SELECT pg_terminate_backend({target})"
    else:
        query = DOLIBARR_STOCK_QUERY.replace(
            "FROM llx_product p", "FROM (SELECT SLEEP(1) AS pause) z, llx_product p"
        )
        find = (
            "SELECT id FROM information_schema.processlist WHERE info LIKE "
            "'%SLEEP(1) AS pause%' AND id <> CONNECTION_ID() AND command = 'Query'"
        )
        kill = "KILL CONNECTION {target}"
    terminator = Terminator(url, find, kill)
    caplog.set_level(logging.WARNING, logger="eyekiosk_sync.adapters.sql")

    terminator.start()
    result = read(dolibarr_query(url, [1, 2], query=query))
    terminator.stop()

    assert len(terminator.killed) == 1
    assert as_dict(result) == expected_stock(PRODUCTS, (1, 2))
    assert "sql.reconnect" in caplog.text


# Through the engine -----------------------------------------------------------------

SQL_SOURCE = """
[[jobs.sources]]
adapter = "sql"
url = "sqlite:///erp.db"
query = \"\"\"
SELECT p.ref, p.price, s.fk_entrepot, s.reel
FROM llx_product p JOIN llx_product_stock s ON s.fk_product = p.rowid
WHERE s.fk_entrepot IN :warehouses
\"\"\"
parameters = { warehouses = [1, 2, 3] }
label = "llx_product"

[jobs.sources.columns]
key = "ref"
quantity = "reel"
price = "price"
warehouse = "fk_entrepot"
"""


def use_sql_source(installation: Installation) -> None:
    """Replace the installation's csv source with the sql source over erp.db."""
    config = installation.config_path.read_text(encoding="utf-8")
    head = config[: config.index("[[jobs.sources]]")]
    installation.config_path.write_text(head + SQL_SOURCE, encoding="utf-8")


def test_engine_syncs_from_sql_source(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A job whose source is Dolibarr on SQLite sends the seeded changes, then nothing."""
    products = sample_products(500)
    load_dolibarr(f"sqlite:///{tmp_path / 'erp.db'}", products)
    installation = Installation.create(tmp_path, sandbox)
    use_sql_source(installation)

    first = installation.sync()
    second = installation.sync()

    assert first.outcome == "success"
    assert first.changed == 25
    assert first.updates_accepted == 25
    assert second.changed == 0
    assert sandbox.store is not None
    for product in products[:50]:
        frame = sandbox.store.find_frame(product.ref)
        assert frame is not None
        assert frame["quantity"] == product.on_hand


def test_connection_lost_recognised_from_driver_codes() -> None:
    """Driver errors that mean a lost session count as dropped even when not invalidated."""
    from sqlalchemy.exc import OperationalError

    from adapters.erp_database import is_connection_lost

    class Killed(Exception):
        sqlstate = "57P01"

    class GoneAway(Exception):
        pass

    class Syntax(Exception):
        sqlstate = "42601"

    assert is_connection_lost(OperationalError("SELECT 1", {}, Killed()))
    assert is_connection_lost(OperationalError("SELECT 1", {}, GoneAway(2013, "Lost connection")))
    assert not is_connection_lost(OperationalError("SELECT 1", {}, Syntax()))
    assert not is_connection_lost(OperationalError("SELECT 1", {}, GoneAway(1146, "no table")))
