"""Load the real ERP schemas in tests/data/real into test databases, with sample rows.

Dolibarr ships MySQL DDL only, and its installer converts it for PostgreSQL; the
translation here does the same for the few MySQL-only types the two Dolibarr
tables use, and for SQLite. Odoo's pg_dump is loaded into the throwaway schema.
ERPNext's ``tabBin`` is created from its DocType JSON, as Frappe does. Table and
column names stay as the ERPs have them.

Sample products come from tests/data/stock_export_us.csv: ``ref`` is the Item
Code, ``barcode`` the UPC, ``price`` the Retail Price, and the On Hand count is
split over two or three warehouses (``fk_entrepot`` 1, 2 and 3).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

DATA = Path(__file__).resolve().parents[1] / "data"
REAL = DATA / "real"
US_EXPORT = DATA / "stock_export_us.csv"
WAREHOUSES = (1, 2, 3)


@dataclass(frozen=True)
class Product:
    """One sample product and its stock per warehouse."""

    rowid: int
    ref: str
    barcode: str
    label: str
    price: Decimal
    stock: dict[int, int]

    @property
    def on_hand(self) -> int:
        return sum(self.stock.values())


def sample_products(limit: int = 300) -> list[Product]:
    """Return the first ``limit`` products of the US export with stock split over warehouses."""
    with US_EXPORT.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))[:limit]
    products = []
    for index, record in enumerate(records, start=1):
        on_hand = int(record["On Hand"])
        if index % 2:
            first = on_hand // 2
            stock = {1: first, 2: on_hand - first}
        else:
            first, second = on_hand // 3, on_hand // 3
            stock = {1: first, 2: second, 3: on_hand - first - second}
        products.append(
            Product(
                rowid=index,
                ref=record["Item Code"],
                barcode=record["UPC"],
                label=f"{record['Brand']} {record['Model']} {record['Color']}",
                price=Decimal(record["Retail Price"]),
                stock=stock,
            )
        )
    return products


def expected_stock(products: list[Product], warehouses: tuple[int, ...] = WAREHOUSES) -> dict:
    """Return ``{ref: (quantity summed over the warehouses, price in cents)}``."""
    return {
        p.ref: (sum(q for w, q in p.stock.items() if w in warehouses), int(p.price * 100))
        for p in products
        if any(w in warehouses for w in p.stock)
    }


# Dolibarr ----------------------------------------------------------------------


def dolibarr_ddl(dialect: str) -> list[str]:
    """Return the CREATE TABLE statements of llx_product and llx_product_stock for a dialect."""
    statements = []
    for name in ("dolibarr_llx_product_mysql.sql", "dolibarr_llx_product_stock_mysql.sql"):
        sql = (REAL / name).read_text(encoding="utf-8")
        sql = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
        if dialect == "mysql":
            statements.append(sql.strip().rstrip(";"))
            continue
        sql = re.sub(r"\)\s*ENGINE=innodb;", ")", sql, flags=re.IGNORECASE)
        sql = sql.replace("ON UPDATE CURRENT_TIMESTAMP", "")
        if dialect == "postgresql":
            sql = sql.replace("integer AUTO_INCREMENT PRIMARY KEY", "SERIAL PRIMARY KEY")
            sql = re.sub(r"double\(\d+,\d+\)", "double precision", sql)
            sql = re.sub(r"\btinyint\b", "smallint", sql)
            sql = re.sub(r"\bdatetime\b", "timestamp", sql)
        else:
            sql = sql.replace("integer AUTO_INCREMENT PRIMARY KEY", "INTEGER PRIMARY KEY")
        statements.append(sql.strip())
    return statements


def load_dolibarr(url: str, products: list[Product]) -> None:
    """Create Dolibarr's product tables in the database at ``url`` and insert the products."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in dolibarr_ddl(engine.dialect.name):
                connection.exec_driver_sql(statement)
            connection.execute(
                text(
                    "INSERT INTO llx_product (rowid, ref, label, barcode, price, stock) "
                    "VALUES (:rowid, :ref, :label, :barcode, :price, :stock)"
                ),
                [
                    {
                        "rowid": p.rowid,
                        "ref": p.ref,
                        "label": p.label,
                        "barcode": p.barcode,
                        "price": float(p.price),
                        "stock": p.on_hand,
                    }
                    for p in products
                ],
            )
            connection.execute(
                text(
                    "INSERT INTO llx_product_stock (fk_product, fk_entrepot, reel) "
                    "VALUES (:product, :warehouse, :quantity)"
                ),
                [
                    {"product": p.rowid, "warehouse": w, "quantity": float(q)}
                    for p in products
                    for w, q in p.stock.items()
                ],
            )
    finally:
        engine.dispose()


DOLIBARR_STOCK_QUERY = """
SELECT p.ref, p.price, s.fk_entrepot, s.reel
FROM llx_product p
JOIN llx_product_stock s ON s.fk_product = p.rowid
WHERE s.fk_entrepot IN :warehouses AND p.fk_product_type = 0
ORDER BY p.rowid, s.fk_entrepot
"""
DOLIBARR_VIEW = """
CREATE VIEW eyekiosk_stock AS
SELECT p.ref, p.barcode, p.price, s.fk_entrepot, s.reel
FROM llx_product p JOIN llx_product_stock s ON s.fk_product = p.rowid
"""


# Odoo 16 -----------------------------------------------------------------------

ODOO_LOCATIONS = (
    (1, "WH/Stock", "internal"),
    (2, "WH/Stock/Shelf 2", "internal"),
    (3, "Partners/Customers", "customer"),
    (4, "Virtual Locations/Inventory adjustment", "inventory"),
)
ODOO_STOCK_QUERY = """
SELECT pp.default_code, pt.list_price, sq.location_id, sq.quantity
FROM stock_quant sq
JOIN stock_location sl ON sl.id = sq.location_id AND sl.usage = 'internal'
JOIN product_product pp ON pp.id = sq.product_id
JOIN product_template pt ON pt.id = pp.product_tmpl_id
WHERE pp.active
"""


def odoo_ddl(schema: str) -> list[str]:
    """Return the Odoo dump's statements, retargeted from ``public`` to ``schema``.

    Left out: the session SET lines, the pg_trgm extension and the trigram index
    that needs it (an extension is per database, not per schema), and the
    ``OWNER TO openpg`` lines (the role does not exist here).
    """
    sql = (REAL / "odoo16_stock_schema_postgresql.sql").read_text(encoding="utf-8")
    kept = []
    for statement in sql.split(";\n"):
        lines = [line for line in statement.splitlines() if not line.startswith("--")]
        body = "\n".join(lines).strip()
        if not body or body.startswith(("SET ", "SELECT pg_catalog.set_config")):
            continue
        if "OWNER TO openpg" in body or "pg_trgm" in body or "gin_trgm_ops" in body:
            continue
        kept.append(body.replace("public.", f'"{schema}".'))
    return kept


def load_odoo(url: str, products: list[Product]) -> None:
    """Create Odoo's product and stock tables and insert products with quants."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            schema = connection.exec_driver_sql("SELECT current_schema()").scalar_one()
            for statement in odoo_ddl(schema):
                connection.exec_driver_sql(statement)
            _insert_odoo_rows(connection, products)
    finally:
        engine.dispose()


def _insert_odoo_rows(connection: object, products: list[Product]) -> None:
    execute = connection.execute  # type: ignore[attr-defined]
    execute(
        text(
            "INSERT INTO stock_location (id, name, usage, active) VALUES (:id, :name, :usage, true)"
        ),
        [{"id": i, "name": n, "usage": u} for i, n, u in ODOO_LOCATIONS],
    )
    execute(
        text(
            "INSERT INTO product_template (id, categ_id, uom_id, uom_po_id, detailed_type, "
            "name, list_price, tracking, sale_line_warn, purchase_line_warn, base_unit_count, "
            "active) VALUES (:id, 1, 1, 1, 'product', CAST(:name AS jsonb), :price, 'none', "
            "'no-message', 'no-message', 0, true)"
        ),
        [
            {"id": p.rowid, "name": json.dumps({"en_US": p.label}), "price": p.price}
            for p in products
        ],
    )
    execute(
        text(
            "INSERT INTO product_product (id, product_tmpl_id, default_code, barcode, active, "
            "base_unit_count) VALUES (:id, :id, :code, :barcode, true, 0)"
        ),
        [{"id": p.rowid, "code": p.ref, "barcode": p.barcode} for p in products],
    )
    quants = []
    for p in products:
        # Warehouses 1 and 2 are internal shelves; warehouse 3 stock sits at the
        # customer location, as if already delivered, so it must not count.
        for warehouse, quantity in p.stock.items():
            quants.append({"product": p.rowid, "location": warehouse, "quantity": quantity})
        quants.append({"product": p.rowid, "location": 4, "quantity": -p.on_hand})
    execute(
        text(
            "INSERT INTO stock_quant (product_id, location_id, quantity, reserved_quantity, "
            "in_date) VALUES (:product, :location, :quantity, 0, now())"
        ),
        quants,
    )


# ERPNext -----------------------------------------------------------------------

FRAPPE_TYPES = {"Link": "varchar(140)", "Data": "varchar(140)", "Float": "decimal(21,9)"}


def erpnext_bin_ddl() -> str:
    """Return the CREATE TABLE of ``tabBin`` built from the Bin DocType JSON, as Frappe does."""
    doctype = json.loads((REAL / "erpnext_bin_doctype.json").read_text(encoding="utf-8"))
    columns = [
        "`name` varchar(140) NOT NULL",
        "`creation` datetime(6)",
        "`modified` datetime(6)",
        "`modified_by` varchar(140)",
        "`owner` varchar(140)",
        "`docstatus` int(1) NOT NULL DEFAULT 0",
        "`idx` int(8) NOT NULL DEFAULT 0",
    ]
    for field in doctype["fields"]:
        column_type = FRAPPE_TYPES[field["fieldtype"]]
        default = f" DEFAULT {field['default']}" if "default" in field else ""
        columns.append(f"`{field['fieldname']}` {column_type}{default}")
    body = ",\n  ".join([*columns, "PRIMARY KEY (`name`)"])
    return f"CREATE TABLE `tab{doctype['name']}` (\n  {body}\n) ENGINE=InnoDB"


ERPNEXT_WAREHOUSES = {1: "Stores - EK", 2: "Shop Floor - EK", 3: "Returns - EK"}


def load_erpnext(url: str, products: list[Product]) -> None:
    """Create ``tabBin`` and insert one bin per product and warehouse."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(erpnext_bin_ddl())
            connection.execute(
                text(
                    "INSERT INTO `tabBin` (name, item_code, warehouse, actual_qty, stock_uom) "
                    "VALUES (:name, :item, :warehouse, :quantity, 'Nos')"
                ),
                [
                    {
                        "name": f"MAT-BIN-2024-{p.rowid:05d}-{w}",
                        "item": p.ref,
                        "warehouse": ERPNEXT_WAREHOUSES[w],
                        "quantity": q,
                    }
                    for p in products
                    for w, q in p.stock.items()
                ],
            )
    finally:
        engine.dispose()


# Kiosk order tables --------------------------------------------------------------


def order_tables_ddl(dialect: str) -> list[str]:
    """Return CREATE TABLE statements of an ERP's kiosk order and order-line tables."""
    json_type = {"postgresql": "jsonb", "mysql": "longtext"}.get(dialect, "text")
    timestamp = "timestamp" if dialect != "mysql" else "datetime"
    serial = {
        "postgresql": "SERIAL PRIMARY KEY",
        "mysql": "integer AUTO_INCREMENT PRIMARY KEY",
    }.get(dialect, "INTEGER PRIMARY KEY")
    return [
        f"""CREATE TABLE kiosk_orders (
            order_ref varchar(64) PRIMARY KEY,
            status varchar(32) NOT NULL,
            created {timestamp},
            updated {timestamp},
            total numeric(12,2),
            currency varchar(3),
            rx {json_type},
            stock_booked smallint DEFAULT 0
        )""",
        f"""CREATE TABLE kiosk_order_lines (
            rowid {serial},
            order_ref varchar(64) NOT NULL,
            frame_id varchar(64),
            sku varchar(64) NOT NULL,
            qty integer NOT NULL CHECK (qty > 0),
            unit_price numeric(12,2)
        )""",
    ]


def create_order_tables(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in order_tables_ddl(engine.dialect.name):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


def scalar(url: str, query: str) -> object:
    """Run one query on a fresh connection and return its single value."""
    engine: Engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(query)).scalar()
    finally:
        engine.dispose()
