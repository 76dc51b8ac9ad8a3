"""Benchmark the ``feed`` adapter against the ``csv`` adapter on the same large file.

Writes a CSV feed (and a Google Merchant XML feed) of ``--rows`` rows, serves
the folder from a loopback HTTP server (``http.server``, which sends
Content-Length and Last-Modified and sends 304 for a matching If-Modified-Since), and
reads each case once in a fresh Python subprocess. Each subprocess reports its
wall time for ``read()`` and its peak resident set size (``ru_maxrss``).

Cases:

* ``csv file``: the ``csv`` adapter reading the file from disk.
* ``feed csv``: the ``feed`` adapter downloading and reading the CSV, cold cache.
* ``feed csv 304``: the same feed again, answered by 304 from the warm cache.
* ``feed xml``: the ``feed`` adapter reading the Google Merchant XML, cold cache.

Run: ``.venv/bin/python -m benchmarks.feed --rows 1000000``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_ROWS = 1_000_000
LOOPBACK = "127.0.0.1"

# Runs in the child: build the adapter from JSON options, read once, print the numbers.
CHILD = """
import json, resource, sys, time
from pathlib import Path
from adapters.base import SourceContext
from adapters.registry import load_adapter

alias, options, folder = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
context = SourceContext(job="bench", config_dir=folder, state_dir=folder / "state")
adapter = load_adapter(alias).from_mapping(options, context=context)
start = time.perf_counter()
result = adapter.read()
seconds = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "rows": len(result.rows),
                  "rejected": len(result.rejections)}))
"""


def write_csv(path: Path, rows: int) -> None:
    """Write ``rows`` stock rows in the US export's key, quantity and price columns."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("Item Code,UPC,Brand,On Hand,Retail Price\n")
        for number in range(rows):
            handle.write(
                f"FR-{number:07d},{number:012d},Brand {number % 97},"
                f"{number % 13},{100 + number % 900}.{number % 100:02d}\n"
            )


def write_merchant_xml(path: Path, rows: int) -> None:
    """Write ``rows`` Google Merchant items with id, price, availability and a shipping price."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel>\n'
        )
        for number in range(rows):
            availability = "in stock" if number % 5 else "out of stock"
            handle.write(
                f"<item><g:id>FR-{number:07d}</g:id><title>Frame {number}</title>"
                f"<g:price>{100 + number % 900}.{number % 100:02d} USD</g:price>"
                f"<g:availability>{availability}</g:availability>"
                f"<g:shipping><g:price>4.95 USD</g:price></g:shipping></item>\n"
            )
        handle.write("</channel></rss>\n")


def run_child(alias: str, options: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Read one source in a fresh interpreter and return its measurements."""
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, alias, json.dumps(options), str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows per feed")
    parser.add_argument("--skip-xml", action="store_true", help="leave out the XML case")
    arguments = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="feed-bench-"))
    served = folder / "www"
    served.mkdir()
    try:
        write_csv(served / "stock.csv", arguments.rows)
        if not arguments.skip_xml:
            write_merchant_xml(served / "products.xml", arguments.rows)

        handler = partial(_QuietHandler, directory=str(served))
        server = ThreadingHTTPServer((LOOPBACK, 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://{LOOPBACK}:{server.server_address[1]}"
        columns = {"key": "Item Code", "quantity": "On Hand", "price": "Retail Price"}
        cases: list[tuple[str, str, dict[str, Any], Path]] = [
            ("csv file", "csv", {"path": str(served / "stock.csv"), "columns": columns}, folder),
            (
                "feed csv",
                "feed",
                {"url": f"{base}/stock.csv", "format": "csv", "columns": columns},
                folder / "csv",
            ),
            (
                "feed csv 304",
                "feed",
                {"url": f"{base}/stock.csv", "format": "csv", "columns": columns},
                folder / "csv",
            ),
        ]
        if not arguments.skip_xml:
            cases.append(
                (
                    "feed xml",
                    "feed",
                    {"url": f"{base}/products.xml", "format": "google_merchant"},
                    folder / "xml",
                )
            )

        sizes = {path.name: path.stat().st_size for path in served.iterdir()}
        print(f"rows={arguments.rows} sizes_bytes={sizes}")
        print(f"{'case':<14} {'seconds':>8} {'peak MiB':>9} {'rows':>9} {'rejected':>9}")
        for name, alias, options, case_folder in cases:
            case_folder.mkdir(exist_ok=True)
            numbers = run_child(alias, options, case_folder)
            print(
                f"{name:<14} {numbers['seconds']:>8.2f} {numbers['peak_mib']:>9.0f} "
                f"{numbers['rows']:>9} {numbers['rejected']:>9}"
            )
        server.shutdown()
        server.server_close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the benchmark output to the table."""


if __name__ == "__main__":
    main()
