"""Tests of the supplier feed adapter (alias ``feed``) over real HTTP on loopback."""

from __future__ import annotations

import gzip
import io
import json
import logging
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

import adapters.supplier_feed as supplier_feed
from adapters.base import KEY, PRICE_CENTS, QUANTITY, SourceContext, SourceResult, StockSource
from adapters.feed_transport import HttpFetcher
from adapters.supplier_feed import SupplierFeedSource
from adapters.testing import (
    CONTRACT_SECRET,
    CONTRACT_SECRET_ENV,
    StockRow,
    StockSourceCase,
    StockSourceContract,
    build_source,
)
from sync.errors import SourceError
from sync.sandbox import SandboxServer
from tests.adapters.feed_servers import OTHER_LOOPBACK, FeedHttpServer, Route, etag_of
from tests.sync.harness import US_EXPORT, Installation, read_export

DATA = Path(__file__).resolve().parents[1] / "data"
MERCHANT_XML = (DATA / "real" / "google_merchant_rss2_celebird_variants.xml").read_bytes()
MERCHANT_IDS = ["celebird-eg-variants-apparel-upi-001", "celebird-eg-variants-apparel-upi-002"]
CSV_COLUMNS = {"key": "sku", "quantity": "qty", "price": "price"}
SMALL_CSV = b"sku,qty,price\nA-1,2,10.00\nA-2,0,12.50\nA-3,5,\n"
SECRET = "s3cr3t-feed-token-value"


@pytest.fixture
def server() -> Iterator[FeedHttpServer]:
    with FeedHttpServer() as running:
        yield running


def context(tmp_path: Path) -> SourceContext:
    return SourceContext(job="shop", config_dir=tmp_path, state_dir=tmp_path / "state")


def source(tmp_path: Path, **options: Any) -> SupplierFeedSource:
    options.setdefault("retry_backoff_s", 0)
    adapter = SupplierFeedSource.from_mapping(options, context=context(tmp_path))
    assert isinstance(adapter, SupplierFeedSource)
    return adapter


def read(tmp_path: Path, **options: Any) -> SourceResult:
    return source(tmp_path, **options).read()


def by_key(result: SourceResult) -> dict[str, tuple[int, Any]]:
    return {
        str(row[KEY]): (int(row[QUANTITY]), row[PRICE_CENTS]) for _, row in result.rows.iterrows()
    }


def merchant_item(
    number: int, *, availability: str, price: str = "10.00 USD", quantity: str | None = None
) -> str:
    extra = f"<g:quantity>{quantity}</g:quantity>" if quantity is not None else ""
    return (
        f"<item><g:id>SKU-{number}</g:id><g:price>{price}</g:price>"
        f"<g:availability>{availability}</g:availability>{extra}"
        f"<g:shipping><g:price>4.95 USD</g:price></g:shipping></item>"
    )


def merchant_feed(*items: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">'
        f"<channel><title>t</title>{''.join(items)}</channel></rss>"
    ).encode()


class CountingParser:
    """Wraps a parser function of the adapter and counts its calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.calls = 0
        original = getattr(supplier_feed, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(supplier_feed, name, counted)


# Google Merchant --------------------------------------------------------------


def test_google_merchant_real_feed(tmp_path: Path, server: FeedHttpServer) -> None:
    """The real Merchant Center sample reads two in-stock items at 105.29 USD."""
    url = server.serve("/products.xml", Route(body=MERCHANT_XML))

    result = read(
        tmp_path,
        url=url,
        format="google_merchant",
        currency="USD",
        availability_quantities={"in stock": 5, "out of stock": 0, "preorder": 0, "backorder": 0},
    )

    assert list(result.rows[KEY]) == MERCHANT_IDS
    assert list(result.rows[PRICE_CENTS]) == [10529, 10529]
    assert list(result.rows[QUANTITY]) == [5, 5]
    assert result.rejections == []
    assert result.total_rows == 2


def test_google_merchant_gtin_key(tmp_path: Path, server: FeedHttpServer) -> None:
    """key_field = "gtin" reads the 12-digit UPC as a 14-digit GTIN."""
    url = server.serve("/products.xml", Route(body=MERCHANT_XML))

    result = read(tmp_path, url=url, format="google_merchant", key_field="gtin")

    assert list(result.rows[KEY]) == ["00698615070527", "00698615086467"]


def test_google_merchant_character_reference(tmp_path: Path, server: FeedHttpServer) -> None:
    """The ``White&#47;Yellow`` colour reads as ``White/Yellow`` in a composite SKU key."""
    url = server.serve("/products.xml", Route(body=MERCHANT_XML))

    result = read(
        tmp_path,
        url=url,
        format="google_merchant",
        key_separator="|",
        columns={
            "key": ["g:item_group_id", "g:color"],
            "price": "g:price",
            "availability": "g:availability",
        },
    )

    assert list(result.rows[KEY]) == ["dz1|Black", "dz1|White/Yellow"]


def test_google_merchant_availability_words(tmp_path: Path, server: FeedHttpServer) -> None:
    """Availability words map to quantities, g:quantity wins, unknown words are rejected."""
    body = merchant_feed(
        merchant_item(1, availability="in stock"),
        merchant_item(2, availability="in_stock"),
        merchant_item(3, availability="out of stock"),
        merchant_item(4, availability="preorder"),
        merchant_item(5, availability="backorder"),
        merchant_item(6, availability="in stock", quantity="17"),
        merchant_item(7, availability="limited availability"),
    )
    url = server.serve("/feed.xml", Route(body=body))

    result = read(
        tmp_path,
        url=url,
        format="google_merchant",
        availability_quantities={"In Stock": 3, "out_of_stock": 0, "preorder": 0, "backorder": 0},
    )

    assert by_key(result) == {
        "SKU-1": (3, 1000),
        "SKU-2": (3, 1000),
        "SKU-3": (0, 1000),
        "SKU-4": (0, 1000),
        "SKU-5": (0, 1000),
        "SKU-6": (17, 1000),
    }
    assert [r.location for r in result.rejections] == ["feed.xml item 7 (g:id=SKU-7)"]
    assert "limited availability" in result.rejections[0].reason


def test_google_merchant_currency_mismatch(tmp_path: Path, server: FeedHttpServer) -> None:
    """A price in another currency than ``currency`` is rejected at its item."""
    body = merchant_feed(
        merchant_item(1, availability="in stock", price="10.00 USD"),
        merchant_item(2, availability="in stock", price="9.00 EUR"),
        merchant_item(3, availability="in stock", price="abc USD"),
    )
    url = server.serve("/feed.xml", Route(body=body))

    result = read(tmp_path, url=url, format="google_merchant", currency="USD")

    assert by_key(result) == {"SKU-1": (1, 1000)}
    locations = [r.location for r in result.rejections]
    assert locations == ["feed.xml item 2 (g:id=SKU-2)", "feed.xml item 3 (g:id=SKU-3)"]
    assert "is in EUR, but currency is USD" in result.rejections[0].reason
    assert "not an amount" in result.rejections[1].reason


def test_xml_dtd_rejected(tmp_path: Path, server: FeedHttpServer) -> None:
    """A feed with an entity-expansion DTD is rejected before anything expands."""
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<rss><channel><item><id>&b;</id><qty>1</qty></item></channel></rss>"
    )
    url = server.serve("/bomb.xml", Route(body=bomb))

    with pytest.raises(SourceError, match=r"DTD"):
        read(
            tmp_path,
            url=url,
            format="xml",
            record_path="rss/channel/item",
            columns={"key": "id", "quantity": "qty"},
        )


# Conditional fetches ------------------------------------------------------------


@pytest.mark.parametrize(
    "validator",
    [
        pytest.param({"etag": etag_of(MERCHANT_XML)}, id="etag"),
        pytest.param({"last_modified": "Wed, 21 Oct 2026 07:28:00 GMT"}, id="last-modified"),
    ],
)
def test_feed_not_modified_skips_parsing(
    tmp_path: Path,
    server: FeedHttpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    validator: dict[str, Any],
) -> None:
    """A 304 answer returns the cached result without downloading or parsing."""
    parser = CountingParser(monkeypatch, "read_xml_records")
    url = server.serve("/products.xml", Route(body=MERCHANT_XML, **validator))
    adapter = source(tmp_path, url=url, format="google_merchant")
    first = adapter.read()
    caplog.set_level(logging.INFO, logger="eyekiosk_sync.adapters.feed")

    second = adapter.read()

    assert server.downloads("/products.xml") == 1
    assert server.not_modified("/products.xml") == 1
    assert parser.calls == 1
    assert by_key(second) == by_key(first)
    assert second.rows[KEY].dtype == first.rows[KEY].dtype
    assert second.rows[QUANTITY].dtype == first.rows[QUANTITY].dtype
    assert "feed.unchanged" in caplog.text
    assert "reason=not_modified" in caplog.text
    assert list((tmp_path / "state" / "feeds").glob("shop-products.xml-*.json"))


def test_feed_not_modified_keeps_rejections(tmp_path: Path, server: FeedHttpServer) -> None:
    """The cached result carries the rejections of the read it came from."""
    body = b"sku,qty,price\nA-1,2,10.00\nA-2,x,1.00\n"
    url = server.serve("/stock.csv", Route(body=body, etag='"v1"'))
    adapter = source(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)
    first = adapter.read()

    second = adapter.read()

    assert server.not_modified("/stock.csv") == 1
    assert second.rejections == first.rejections
    assert second.rejections[0].location == "stock.csv:3"
    assert second.total_rows == 2


def test_feed_same_body_not_parsed_again(
    tmp_path: Path, server: FeedHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without validators, a body identical to the last one reuses the cached result."""
    parser = CountingParser(monkeypatch, "read_json_records")
    body = json.dumps({"items": [{"sku": "A", "qty": 1}]}).encode()
    url = server.serve("/stock.json", Route(body=body))
    adapter = source(
        tmp_path,
        url=url,
        format="json",
        records_path="items",
        columns={"key": "sku", "quantity": "qty"},
    )

    adapter.read()
    adapter.read()

    assert server.downloads("/stock.json") == 2
    assert parser.calls == 1


def test_feed_changed_body_parsed(tmp_path: Path, server: FeedHttpServer) -> None:
    """A new ETag and body are downloaded and parsed."""
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, etag='"v1"'))
    adapter = source(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)
    adapter.read()
    server.serve("/stock.csv", Route(body=b"sku,qty,price\nA-1,9,10.00\n", etag='"v2"'))

    result = adapter.read()

    assert by_key(result) == {"A-1": (9, 1000)}
    assert server.requests[-1]["headers"].get("If-None-Match") == '"v1"'


def test_feed_changed_options_parse_again(tmp_path: Path, server: FeedHttpServer) -> None:
    """Changed parsing options ignore the cache even when the server says 304."""
    url = server.serve("/products.xml", Route(body=MERCHANT_XML, etag='"v1"'))
    read(tmp_path, url=url, format="google_merchant")

    result = read(tmp_path, url=url, format="google_merchant", key_field="gtin")

    assert list(result.rows[KEY]) == ["00698615070527", "00698615086467"]
    assert server.downloads("/products.xml") == 2


# Formats and payloads -------------------------------------------------------------


def test_json_records_path(tmp_path: Path, server: FeedHttpServer) -> None:
    """Records under data.items read with dotted fields; numbers keep their exact text."""
    document = {
        "data": {
            "items": [
                {"sku": "J-1", "stock": {"available": 4}, "price": 105.29},
                {"sku": "J-2", "stock": {"available": 2.5}, "price": "12.00"},
                {"sku": "J-3", "stock": {"available": None}, "availability": "in_stock"},
            ]
        }
    }
    url = server.serve("/v1/stock", Route(body=json.dumps(document).encode()))

    result = read(
        tmp_path,
        url=url,
        format="json",
        records_path="data.items",
        file_name="feed.json",
        columns={
            "key": "sku",
            "quantity": "stock.available",
            "price": "price",
            "availability": "availability",
        },
    )

    assert by_key(result)["J-1"] == (4, 10529)
    assert by_key(result)["J-3"][0] == 1
    assert [r.location for r in result.rejections] == ["feed.json data.items[1]"]
    assert "2.5" in result.rejections[0].reason


def test_json_records_path_missing(tmp_path: Path, server: FeedHttpServer) -> None:
    """A records_path that does not exist names the keys that do."""
    url = server.serve("/v1/stock", Route(body=b'{"data": {"products": []}}'))

    with pytest.raises(SourceError, match=r"has no key 'items'.*'products'"):
        read(
            tmp_path,
            url=url,
            format="json",
            records_path="data.items",
            columns={"key": "sku", "quantity": "qty"},
        )


def test_json_deep_nesting_rejected(tmp_path: Path, server: FeedHttpServer) -> None:
    """JSON nested 100,000 levels deep is a SourceError naming the feed, not a RecursionError."""
    depth = 100_000
    url = server.serve("/deep.json", Route(body=b"[" * depth + b"]" * depth))

    with pytest.raises(SourceError, match=r"feed http://.*/deep.json \(json\): .*nested deeper"):
        read(
            tmp_path,
            url=url,
            format="json",
            columns={"key": "sku", "quantity": "qty"},
        )


def test_csv_gzip_file_tsv_decimal_comma(tmp_path: Path, server: FeedHttpServer) -> None:
    """A .gz TSV with decimal commas reads like the plain file, located by its inner name."""
    text = "Artikel\tBestand\tPreis\nB-1\t3\t12,50\nB-2\t-1\t1,00\n"
    url = server.serve("/export/bestand.tsv.gz", Route(body=gzip.compress(text.encode())))

    result = read(
        tmp_path,
        url=url,
        format="csv",
        delimiter="\t",
        decimal=",",
        columns={"key": "Artikel", "quantity": "Bestand", "price": "Preis"},
    )

    assert by_key(result) == {"B-1": (3, 1250)}
    assert [r.location for r in result.rejections] == ["bestand.tsv:3"]


def test_csv_content_encoding_gzip(tmp_path: Path, server: FeedHttpServer) -> None:
    """A Content-Encoding: gzip response is decoded."""
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, gzip_encoding=True))

    result = read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)

    assert len(result.rows) == 3
    assert server.requests[0]["headers"]["Accept-Encoding"] == "gzip, identity"


def test_gzip_multi_member_read_whole(tmp_path: Path, server: FeedHttpServer) -> None:
    """A gzip file of several members (``cat a.gz b.gz``) reads every member, as gzip -d does."""
    first = b"sku,qty,price\nA-1,2,10.00\n"
    second = b"A-2,0,12.50\n"
    third = b"A-3,5,1.00\n"
    body = gzip.compress(first) + gzip.compress(second) + b"\0" * 8 + gzip.compress(third)
    url = server.serve("/stock.csv.gz", Route(body=body))

    result = read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)

    assert by_key(result) == {"A-1": (2, 1000), "A-2": (0, 1250), "A-3": (5, 100)}
    assert result.total_rows == 3


def test_gzip_multi_member_size_limit(tmp_path: Path, server: FeedHttpServer) -> None:
    """max_bytes counts the unpacked bytes of all gzip members together."""
    member = gzip.compress(b"A-9,1,1.00\n" * 40)
    body = gzip.compress(b"sku,qty,price\n") + member + member
    url = server.serve("/stock.csv.gz", Route(body=body))

    with pytest.raises(SourceError, match=r"unpacked feed is larger than max_bytes = 600"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS, max_bytes=600)


def test_gzip_garbage_after_member(tmp_path: Path, server: FeedHttpServer) -> None:
    """Bytes after a gzip member that start no further member are invalid gzip data."""
    url = server.serve("/stock.csv.gz", Route(body=gzip.compress(SMALL_CSV) + b"trailing"))

    with pytest.raises(SourceError, match=r"not valid gzip data"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)


def zipped(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def test_zip_single_member(tmp_path: Path, server: FeedHttpServer) -> None:
    """A zip with one file reads that file."""
    url = server.serve("/stock.zip", Route(body=zipped(**{"stock.csv": SMALL_CSV})))

    result = read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)

    assert len(result.rows) == 3


def test_zip_member_chosen(tmp_path: Path, server: FeedHttpServer) -> None:
    """With several files, zip_member picks one, and no choice is an error."""
    body = zipped(**{"readme.txt": b"hello", "data/stock.csv": SMALL_CSV})
    url = server.serve("/stock.zip", Route(body=body))

    with pytest.raises(SourceError, match=r"has 2 files.*Set zip_member"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)
    result = read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS, zip_member="data/stock.csv")

    assert len(result.rows) == 3


# Limits and truncation ----------------------------------------------------------


@pytest.mark.parametrize(
    "route",
    [
        pytest.param(Route(body=SMALL_CSV * 20), id="content-length"),
        pytest.param(Route(body=SMALL_CSV * 20, declare_length=False), id="streamed"),
        pytest.param(Route(body=SMALL_CSV * 20, gzip_encoding=True), id="gzip-unpacked"),
    ],
)
def test_feed_oversized_rejected(tmp_path: Path, server: FeedHttpServer, route: Route) -> None:
    """A body over max_bytes raises an error naming the limit and the option."""
    url = server.serve("/stock.csv", route)

    with pytest.raises(SourceError, match=r"larger than max_bytes = 500 bytes.*Raise max_bytes"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS, max_bytes=500)


TRUNCATED = [
    pytest.param("csv", Route(body=SMALL_CSV[:-4]), "ends without a line break", id="csv-mid-row"),
    pytest.param(
        "csv",
        Route(body=b"sku,qty,price\nA-1,2,10.00\nA-2,0\n"),
        "last row has 2 cells but the header has 3",
        id="csv-short-last-row",
    ),
    pytest.param(
        "csv",
        Route(body=SMALL_CSV, cut_after=len(SMALL_CSV) - 10),
        "cut off|ended",
        id="content-length-short",
    ),
    pytest.param(
        "csv",
        Route(body=gzip.compress(SMALL_CSV * 50)[:-30]),
        "gzip stream ends before its end marker",
        id="gzip-cut",
    ),
    pytest.param(
        "csv",
        Route(body=gzip.compress(SMALL_CSV) + gzip.compress(SMALL_CSV[14:] * 50)[:-30]),
        "gzip stream ends before its end marker",
        id="gzip-second-member-cut",
    ),
    pytest.param("csv", Route(body=zipped(a=SMALL_CSV)[:-40]), "not a complete zip", id="zip-cut"),
    pytest.param(
        "google_merchant",
        Route(body=MERCHANT_XML[: len(MERCHANT_XML) // 2]),
        "not well-formed XML",
        id="xml-cut",
    ),
    pytest.param(
        "json",
        Route(body=b'{"items": [{"sku": "A", "qty": 1}, {"sku"'),
        "not valid JSON",
        id="json-cut",
    ),
]


@pytest.mark.parametrize(("format_name", "route", "message"), TRUNCATED)
def test_feed_truncated_rejected_whole(
    tmp_path: Path, server: FeedHttpServer, format_name: str, route: Route, message: str
) -> None:
    """A feed cut off in transfer raises an error, and no row from it is returned or cached."""
    url = server.serve("/feed", route)
    options: dict[str, Any] = {"url": url, "format": format_name, "attempts": 1}
    if format_name == "csv":
        options["columns"] = CSV_COLUMNS
    if format_name == "json":
        options.update(records_path="items", columns={"key": "sku", "quantity": "qty"})

    with pytest.raises(SourceError, match=message):
        read(tmp_path, **options)
    assert not list((tmp_path / "state" / "feeds").glob("*.parquet"))


def test_feed_retries_server_errors(tmp_path: Path, server: FeedHttpServer) -> None:
    """Two 503 answers are retried with doubling waits, and the third try succeeds."""
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, failures=2))
    adapter = source(tmp_path, url=url, format="csv", columns=CSV_COLUMNS, retry_backoff_s=0.5)
    waits: list[float] = []
    adapter.sleep = waits.append

    result = adapter.read()

    assert len(result.rows) == 3
    assert waits == [0.5, 1.0]


def test_feed_gives_up_after_attempts(tmp_path: Path, server: FeedHttpServer) -> None:
    """Persistent 503 answers raise an error after ``attempts`` tries."""
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, failures=10))

    with pytest.raises(SourceError, match=r"status 503.*Gave up after 3 tries"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)


def test_feed_read_timeout(tmp_path: Path, server: FeedHttpServer) -> None:
    """A body slower than read_timeout_s times out."""
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, delay_s=1.5))

    with pytest.raises(SourceError, match=r"timed out"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS, read_timeout_s=0.3, attempts=1)


def test_feed_not_found(tmp_path: Path, server: FeedHttpServer) -> None:
    """A 404 is not retried and names the status."""
    with pytest.raises(SourceError, match=r"status 404.*Check the url"):
        read(tmp_path, url=f"{server.url}/missing.csv", format="csv", columns=CSV_COLUMNS)
    assert len(server.requests) == 1


def test_feed_304_without_cache_rejected(tmp_path: Path, server: FeedHttpServer) -> None:
    """A 304 with nothing cached is asked again without conditions, then is a SourceError."""
    url = server.serve("/lie304.csv", Route(body=SMALL_CSV, always_not_modified=True))

    with pytest.raises(SourceError, match=r"/lie304.csv \(csv\): the server responded with 304"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)
    assert len(server.requests) == 2
    assert "If-None-Match" not in server.requests[1]["headers"]
    assert "If-Modified-Since" not in server.requests[1]["headers"]


def test_feed_304_with_lost_cache_refetched(tmp_path: Path, server: FeedHttpServer) -> None:
    """A 304 to a conditional request whose cached rows are unreadable fetches the feed again."""
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, etag='"v1"'))
    adapter = source(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)
    adapter.read()
    for rows in (tmp_path / "state" / "feeds").glob("*.parquet"):
        rows.write_bytes(b"not parquet")

    result = adapter.read()

    assert len(result.rows) == 3
    assert server.not_modified("/stock.csv") == 1
    assert server.downloads("/stock.csv") == 2


def test_feed_total_timeout(tmp_path: Path, server: FeedHttpServer) -> None:
    """A body that trickles in within read_timeout_s per byte stops at total_timeout_s."""
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, trickle_s=0.1))
    started = time.monotonic()

    with pytest.raises(SourceError, match=r"longer than total_timeout_s = 1 seconds"):
        read(
            tmp_path,
            url=url,
            format="csv",
            columns=CSV_COLUMNS,
            read_timeout_s=2,
            total_timeout_s=1,
        )
    assert time.monotonic() - started < 3
    assert server.downloads("/stock.csv") == 1


# Redirects ------------------------------------------------------------------------

REDIRECT_AUTH_CASES = [
    pytest.param({"type": "header", "name": "X-Api-Key"}, id="header"),
    pytest.param({"type": "query", "name": "apiKey"}, id="query"),
    pytest.param({"type": "bearer"}, id="bearer"),
]


@pytest.fixture
def other_server() -> Iterator[FeedHttpServer]:
    with FeedHttpServer(OTHER_LOOPBACK) as running:
        yield running


@pytest.mark.parametrize("auth", REDIRECT_AUTH_CASES)
def test_feed_redirect_other_host_rejected(
    tmp_path: Path,
    server: FeedHttpServer,
    other_server: FeedHttpServer,
    monkeypatch: pytest.MonkeyPatch,
    auth: dict[str, str],
) -> None:
    """A redirect to another host is not followed, so that host never sees the secret."""
    monkeypatch.setenv("FEED_SECRET", SECRET)
    target = other_server.serve("/plain.csv", Route(body=SMALL_CSV))
    url = server.serve("/stock.csv", Route(body=b"", redirect=f"{target}?token=abc"))

    with pytest.raises(SourceError) as caught:
        read(
            tmp_path,
            url=url,
            format="csv",
            columns=CSV_COLUMNS,
            auth={**auth, "secret_env": "FEED_SECRET"},
        )

    message = str(caught.value)
    assert f"to another origin, {other_server.url}." in message
    assert "Set url to the feed's final address" in message
    assert "/plain.csv" not in message
    assert "abc" not in message
    assert SECRET not in message
    assert other_server.requests == []


@pytest.mark.parametrize("auth", REDIRECT_AUTH_CASES)
def test_feed_redirect_same_origin_keeps_auth(
    tmp_path: Path,
    server: FeedHttpServer,
    monkeypatch: pytest.MonkeyPatch,
    auth: dict[str, str],
) -> None:
    """A redirect within the origin is followed, and the secret goes along to the new path."""
    monkeypatch.setenv("FEED_SECRET", SECRET)
    checks: dict[str, dict[str, Any]] = {
        "header": {"header": ("X-Api-Key", SECRET)},
        "query": {"query": ("apiKey", SECRET)},
        "bearer": {"bearer": SECRET},
    }
    required = checks[auth["type"]]
    server.serve("/v2/stock.csv", Route(body=SMALL_CSV, **required))
    url = server.serve("/stock.csv", Route(body=b"", redirect="/v2/stock.csv", redirect_status=301))

    result = read(
        tmp_path,
        url=url,
        format="csv",
        columns=CSV_COLUMNS,
        auth={**auth, "secret_env": "FEED_SECRET"},
    )

    assert len(result.rows) == 3
    assert [request["path"] for request in server.requests] == ["/stock.csv", "/v2/stock.csv"]


def test_feed_redirect_loop_stops(tmp_path: Path, server: FeedHttpServer) -> None:
    """A redirect loop stops after five redirects with an error."""
    url = server.serve("/loop.csv", Route(body=b"", redirect="/loop.csv"))

    with pytest.raises(SourceError, match=r"redirected more than 5 times"):
        read(tmp_path, url=url, format="csv", columns=CSV_COLUMNS)
    assert len(server.requests) == 6


def test_feed_redirect_https_to_http_rejected(tmp_path: Path) -> None:
    """A redirect from https to http on the same host is rejected as a downgrade."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://feed.example/stock.csv"})

    adapter = source(
        tmp_path, url="https://feed.example/stock.csv", format="csv", columns=CSV_COLUMNS
    )
    fetcher = HttpFetcher(
        "https://feed.example/stock.csv",
        transfer=adapter.options,
        auth=None,
        headers={},
        config_dir=tmp_path,
        source=adapter.describe(),
        transport=httpx.MockTransport(handler),
    )

    with pytest.raises(SourceError, match=r"redirected \(302\) from https to unencrypted http"):
        fetcher.fetch(tmp_path / "body", {})
    assert seen == ["https://feed.example/stock.csv"]


# Authentication -------------------------------------------------------------------

AUTH_CASES = [
    pytest.param(
        {"type": "basic", "username": "practice"}, {"basic": ("practice", SECRET)}, id="basic"
    ),
    pytest.param({"type": "bearer"}, {"bearer": SECRET}, id="bearer"),
    pytest.param(
        {"type": "header", "name": "X-Api-Key"}, {"header": ("X-Api-Key", SECRET)}, id="header"
    ),
    pytest.param({"type": "query", "name": "apiKey"}, {"query": ("apiKey", SECRET)}, id="query"),
]


@pytest.mark.parametrize(("auth", "required"), AUTH_CASES)
def test_feed_auth_secret_never_shown(
    tmp_path: Path,
    server: FeedHttpServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    auth: dict[str, str],
    required: dict[str, Any],
) -> None:
    """Each auth type sends the secret from the environment, and no log or description shows it."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FEED_SECRET", SECRET)
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, **required))
    adapter = source(
        tmp_path,
        url=url,
        format="csv",
        columns=CSV_COLUMNS,
        auth={**auth, "secret_env": "FEED_SECRET"},
    )

    result = adapter.read()

    assert len(result.rows) == 3
    assert SECRET not in adapter.describe()
    assert SECRET not in result.description
    assert SECRET not in caplog.text
    assert "HTTP Request" in caplog.text


@pytest.mark.parametrize(("auth", "required"), AUTH_CASES)
def test_feed_auth_wrong_secret(
    tmp_path: Path,
    server: FeedHttpServer,
    caplog: pytest.LogCaptureFixture,
    auth: dict[str, str],
    required: dict[str, Any],
) -> None:
    """A wrong secret from a file raises a 401 error that does not contain the secret."""
    caplog.set_level(logging.DEBUG)
    (tmp_path / "feed.secret").write_text("wrong-secret-value\n", encoding="utf-8")
    url = server.serve("/stock.csv", Route(body=SMALL_CSV, **required))

    with pytest.raises(SourceError, match=r"status 401.*Check the auth options") as caught:
        read(
            tmp_path,
            url=url,
            format="csv",
            columns=CSV_COLUMNS,
            auth={**auth, "secret_file": "feed.secret"},
        )
    assert "wrong-secret-value" not in str(caught.value)
    assert "wrong-secret-value" not in caplog.text


def test_feed_auth_env_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset secret variable is named in the error before any request."""
    monkeypatch.delenv("FEED_SECRET", raising=False)

    with pytest.raises(SourceError, match=r"FEED_SECRET.*not set"):
        read(
            tmp_path,
            url="http://127.0.0.1:9/stock.csv",
            format="csv",
            columns=CSV_COLUMNS,
            auth={"type": "bearer", "secret_env": "FEED_SECRET"},
        )


def test_feed_describe_redacts_url_key(tmp_path: Path) -> None:
    """A key written into the URL's query is replaced by *** in the description."""
    adapter = source(
        tmp_path,
        url="https://supplier.example/feed.csv?format=csv&api_key=plain-key",
        format="csv",
        columns=CSV_COLUMNS,
    )

    assert (
        adapter.describe() == "feed https://supplier.example/feed.csv?format=csv&api_key=*** (csv)"
    )


OPTION_ERRORS = [
    pytest.param({"format": "csv", "columns": CSV_COLUMNS}, "either url or an", id="no-target"),
    pytest.param(
        {"url": "ftp://x/feed.csv", "format": "csv", "columns": CSV_COLUMNS},
        "http:// or https://",
        id="scheme",
    ),
    pytest.param(
        {
            "url": "http://x/f",
            "format": "csv",
            "columns": CSV_COLUMNS,
            "auth": {"type": "bearer", "secret": "x"},
        },
        "Extra inputs are not permitted",
        id="secret-in-toml",
    ),
    pytest.param(
        {"url": "http://x/f", "format": "csv", "columns": {"key": "sku"}},
        "CSV feed needs columns.quantity",
        id="csv-no-quantity",
    ),
    pytest.param(
        {"url": "http://x/f", "format": "xml", "columns": {"key": "id", "quantity": "q"}},
        "needs record_path",
        id="xml-no-record-path",
    ),
    pytest.param(
        {"url": "http://x/f", "format": "google_merchant", "currency": "usd"},
        "currency",
        id="currency-code",
    ),
]


@pytest.mark.parametrize(("options", "message"), OPTION_ERRORS)
def test_feed_options_invalid(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    """Invalid option combinations fail validation with a message naming the fix."""
    with pytest.raises(ValidationError, match=message):
        SupplierFeedSource.from_mapping(options, context=context(tmp_path))


# End to end -----------------------------------------------------------------------


def feed_installation(folder: Path, sandbox: SandboxServer, url: str) -> Installation:
    """Write a config whose one job reads the US export through the feed adapter."""
    (folder / "client_secret").write_text("sandbox-secret", encoding="utf-8")
    config = folder / "config.toml"
    config.write_text(
        f"""
[partner]
base_url = "{sandbox.url}"
retry_max_delay_s = 5

[auth]
client_id = "sandbox-client"
client_secret_file = "client_secret"

[state]
dir = "state"

[[jobs]]
name = "supplier"

[[jobs.sources]]
adapter = "feed"
url = "{url}"
format = "csv"
retry_backoff_s = 0

[jobs.sources.columns]
key = "Item Code"
quantity = "On Hand"
price = "Retail Price"
""",
        encoding="utf-8",
    )
    installation = Installation(
        folder=folder, config_path=config, export_path=US_EXPORT, sandbox=sandbox
    )
    installation.grant(("frames:read", "inventory:write"))
    return installation


def test_feed_engine_syncs_sandbox(
    tmp_path: Path, sandbox: SandboxServer, server: FeedHttpServer
) -> None:
    """A job whose source is an HTTP feed posts the seeded changes, then sees a 304."""
    body = US_EXPORT.read_bytes()
    url = server.serve("/stock.csv", Route(body=body, etag=etag_of(body)))
    installation = feed_installation(tmp_path, sandbox, url)

    first = installation.sync()
    second = installation.sync()

    assert first.outcome == "success"
    assert first.changed == 25
    assert first.updates_accepted == 25
    assert second.outcome == "success"
    assert second.changed == 0
    assert server.downloads("/stock.csv") == 1
    assert server.not_modified("/stock.csv") == 1
    assert sandbox.store is not None
    for row in read_export()[:20]:
        frame = sandbox.store.find_frame(row["Item Code"])
        assert frame is not None
        assert frame["quantity"] == int(row["On Hand"])


# Adapter contract -----------------------------------------------------------------


class MerchantFeedCase(StockSourceCase):
    """Google Merchant XML over HTTP with a bearer token from the contract's secret."""

    def __init__(self, server: FeedHttpServer) -> None:
        self.server = server

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        items = [
            f"<item><g:id>{row.key}</g:id><g:quantity>{row.quantity}</g:quantity>"
            + (
                ""
                if row.price_cents is None
                else f"<g:price>{row.price_cents / 100:.2f} USD</g:price>"
            )
            + "<g:availability>in stock</g:availability></item>"
            for row in rows
        ]
        return self._source(tmp_path, merchant_feed(*items))

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any] | None:
        items = [merchant_item(1, availability="in stock", quantity="-1")]
        items += [
            f"<item><g:id>{row.key}</g:id><g:quantity>{row.quantity}</g:quantity>"
            + ("" if row.price_cents is None else f"<g:price>{row.price_cents / 100:.2f}</g:price>")
            + "</item>"
            for row in rows
        ]
        return self._source(tmp_path, merchant_feed(*items))

    def _source(self, tmp_path: Path, body: bytes) -> StockSource[Any]:
        path = f"/{tmp_path.name}/feed.xml"
        url = self.server.serve(path, Route(body=body, bearer=CONTRACT_SECRET))
        options = {
            "url": url,
            "format": "google_merchant",
            "auth": {"type": "bearer", "secret_env": CONTRACT_SECRET_ENV},
        }
        return build_source(SupplierFeedSource, options, tmp_path)


class TestSupplierFeedHttpContract(StockSourceContract):
    @pytest.fixture
    def stock_case(self, server: FeedHttpServer) -> StockSourceCase:
        return MerchantFeedCase(server)
