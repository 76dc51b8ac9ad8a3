"""Benchmark the ``sql`` adapter on PostgreSQL against the ``csv`` adapter on the same rows.

Loads ROWS products (SKU, price as double precision, quantity as real, like
Dolibarr's llx_product) into a throwaway PostgreSQL schema with COPY, writes
the same rows as a CSV file, then reads each once through its adapter in a
fresh subprocess and reports wall time and peak resident memory (ru_maxrss).
Prints a Markdown table.

    .venv/bin/python -m benchmarks.erp_postgres [--rows 1000000]

The server comes from EYEKIOSK_BENCH_POSTGRES_URL (default: the local test
server); the schema is dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_ROWS = 1_000_000
POSTGRES_URL = os.environ.get(
    "EYEKIOSK_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def product(index: int) -> tuple[str, str, int]:
    """Return SKU, price text and quantity of the index-th benchmark product."""
    return f"FR-{index:07d}", f"{100 + index % 400}.{index % 100:02d}", index % 7


def load(url: str, schema: str, rows: int, csv_path: Path) -> None:
    """Create the schema and table, COPY the rows into it, and write the CSV file."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(
            text(
                f'CREATE TABLE "{schema}".llx_product '
                "(ref text, price double precision, stock real)"
            )
        )
        raw = connection.connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cursor,
            cursor.copy(f'COPY "{schema}".llx_product (ref, price, stock) FROM STDIN') as copy,
        ):
            for index in range(rows):
                ref, price, quantity = product(index)
                copy.write_row((ref, price, quantity))
    engine.dispose()
    with csv_path.open("w", encoding="utf-8") as handle:
        handle.write("ref,price,stock\n")
        for index in range(rows):
            ref, price, quantity = product(index)
            handle.write(f"{ref},{price},{quantity}\n")


def run_child(kind: str, target: str) -> None:
    """Read once through one adapter and print rows, seconds and peak RSS as JSON."""
    from adapters.base import SourceContext
    from adapters.erp_database import ErpDatabaseSource
    from adapters.stock_file import StockFileSource

    folder = Path(tempfile.gettempdir())
    context = SourceContext(job="bench", config_dir=folder, state_dir=folder)
    columns = {"key": "ref", "quantity": "stock", "price": "price"}
    started = time.perf_counter()
    if kind == "sql":
        source = ErpDatabaseSource.from_mapping(
            {"url": target, "table": "llx_product", "columns": columns}, context=context
        )
    else:
        source = StockFileSource.from_mapping({"path": target, "columns": columns}, context=context)
    result = source.read()
    source.close()
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": len(result.rows), "seconds": seconds, "peak_mib": peak_kib / 1024}))


def measure(kind: str, target: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.erp_postgres", "--child", kind, target],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "TARGET"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        run_child(*arguments.child)
        return

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "stock.csv"
        try:
            load(POSTGRES_URL, schema, arguments.rows, csv_path)
            results = {
                "sql (PostgreSQL, server-side cursor)": measure(
                    "sql", url.render_as_string(hide_password=False)
                ),
                "csv (same rows)": measure("csv", str(csv_path)),
            }
        finally:
            engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with engine.connect() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            engine.dispose()

    print(f"| Adapter ({arguments.rows:,} rows) | Rows read | Wall time (s) | Peak RSS (MiB) |")
    print("| --- | ---: | ---: | ---: |")
    for name, result in results.items():
        print(
            f"| {name} | {int(result['rows']):,} | {result['seconds']:.2f} | "
            f"{result['peak_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
