"""Tests of the CSV stock-export adapter (alias ``csv``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from adapters.base import KEY, PRICE_CENTS, QUANTITY, SourceContext, SourceResult
from adapters.stock_file import StockFileSource
from sync.errors import SourceError

DATA = Path(__file__).resolve().parents[1] / "data"

US = {
    "path": "stock_export_us.csv",
    "columns": {"key": "Item Code", "quantity": "On Hand", "price": "Retail Price"},
}
DE = {
    "path": "stock_export_de.csv",
    "encoding": "cp1252",
    "delimiter": ";",
    "decimal": ",",
    "columns": {"key": "Artikelnummer", "quantity": "Bestand", "price": "VK-Preis EUR"},
}
WOOCOMMERCE = {
    "path": "real/woocommerce_sample_products.csv",
    "empty_quantity": "availability",
    "availability": {"column": "In stock?", "available_quantity": 1, "unavailable_quantity": 0},
    "columns": {"key": "SKU", "quantity": "Stock", "price": "Regular price"},
}
SHOPIFY = {
    "path": "real/shopify_products_export_packt.csv",
    "key_separator": "/",
    "columns": {
        "key": ["Handle", "Option1 Value"],
        "quantity": "Variant Inventory Qty",
        "price": "Variant Price",
    },
}
SHOPIFY_INVENTORY = {
    "path": "real/shopify_inventory_export_prijsgarantie_head.csv",
    "key_type": "barcode",
    "columns": {"key": "Variant Barcode", "quantity": "Variant Inventory Qty"},
}


def read(options: dict[str, Any], config_dir: Path = DATA) -> SourceResult:
    context = SourceContext(job="test", config_dir=config_dir, state_dir=config_dir)
    return StockFileSource.from_mapping(options, context=context).read()


def write_csv(tmp_path: Path, text: str, name: str = "stock.csv", encoding: str = "utf-8") -> str:
    (tmp_path / name).write_bytes(text.encode(encoding))
    return name


def row(result: SourceResult, key: str) -> dict[str, Any]:
    matches = result.rows[result.rows[KEY] == key]
    assert len(matches) == 1, f"expected one row for {key!r}, found {len(matches)}"
    return matches.iloc[0].to_dict()


def small(tmp_path: Path, text: str, **options: Any) -> SourceResult:
    name = write_csv(tmp_path, text)
    columns = options.pop("columns", {"key": "sku", "quantity": "qty", "price": "price"})
    return read({"path": name, "columns": columns, **options}, tmp_path)


# Sample exports ------------------------------------------------------------


def test_read_us_export_values() -> None:
    """The US export reads 500 rows with FR-00001 at quantity 2 and 288.99."""
    result = read(US)

    assert result.total_rows == 500
    assert len(result.rows) == 500
    assert result.rejections == []
    assert row(result, "FR-00001")[QUANTITY] == 2
    assert row(result, "FR-00001")[PRICE_CENTS] == 28899
    assert row(result, "FR-00500")[QUANTITY] == 0


def test_read_us_export_dtypes() -> None:
    """Rows have the contract's dtypes and unique keys."""
    rows = read(US).rows

    assert list(rows.columns) == [KEY, QUANTITY, PRICE_CENTS]
    assert rows[KEY].dtype == "string"
    assert rows[QUANTITY].dtype == "Int64"
    assert rows[PRICE_CENTS].dtype == "Int64"
    assert rows[KEY].is_unique


def test_read_de_export_values() -> None:
    """The German cp1252 export with semicolons and decimal commas reads like the US one."""
    result = read(DE)

    assert result.total_rows == 500
    assert result.rejections == []
    assert row(result, "FR-00001")[QUANTITY] == 2
    assert row(result, "FR-00001")[PRICE_CENTS] == 28899


def test_read_us_and_de_same_rows() -> None:
    """The US and German exports of the same stock give identical rows."""
    us = read(US).rows
    de = read(DE).rows

    pd.testing.assert_frame_equal(us, de)


def test_read_us_upc_and_de_ean_same_keys() -> None:
    """UPC-A keys of the US file and EAN-13 keys of the German file match as GTIN-14."""
    us = read({**US, "key_type": "barcode", "columns": {**US["columns"], "key": "UPC"}})
    de = read({**DE, "key_type": "barcode", "columns": {**DE["columns"], "key": "EAN"}})

    assert us.rejections == []
    assert row(us, "08052892140274")[PRICE_CENTS] == 28899
    pd.testing.assert_frame_equal(us.rows, de.rows)


def test_read_us_and_de_composite_same_keys() -> None:
    """Brand, model, colour code and eye size give the same keys in both exports.

    The German file writes the size as ``53-17-145`` under ``Größe``.
    """
    us_parts = ["Brand", "Model", "Color Code", "Eye"]
    de_parts = ["Marke", "Modell", "Farbcode", "Größe"]
    us = read({**US, "key_type": "composite", "columns": {**US["columns"], "key": us_parts}})
    de = read({**DE, "key_type": "composite", "columns": {**DE["columns"], "key": de_parts}})

    assert us.rejections == []
    assert de.rejections == []
    assert row(us, "rayban|rx5154|2000|53")[PRICE_CENTS] == 28899
    pd.testing.assert_frame_equal(us.rows, de.rows)


def test_read_composite_empty_part_rejected(tmp_path: Path) -> None:
    """A row without a colour code is rejected, naming the column."""
    name = write_csv(
        tmp_path, "Brand,Model,Color,Eye,Qty\nRay-Ban,RX5154,,53,1\nRay-Ban,RX5154,2000,53,2\n"
    )
    options = {
        "path": name,
        "key_type": "composite",
        "columns": {"key": ["Brand", "Model", "Color", "Eye"], "quantity": "Qty"},
    }

    result = read(options, tmp_path)

    assert result.rows[KEY].tolist() == ["rayban|rx5154|2000|53"]
    assert [r.location for r in result.rejections] == ["stock.csv:2"]
    assert "part 'Color' is empty" in result.rejections[0].reason


def test_read_scientific_barcode_reason(tmp_path: Path) -> None:
    """A barcode that a spreadsheet wrote in scientific notation is rejected as such."""
    name = write_csv(tmp_path, "UPC,Qty\n8.05289E+12,1\n8052892140274.0,1\n")
    options = {"path": name, "key_type": "barcode", "columns": {"key": "UPC", "quantity": "Qty"}}

    result = read(options, tmp_path)

    assert "scientific notation" in result.rejections[0].reason
    assert "decimal part" in result.rejections[1].reason


def test_read_woocommerce_availability() -> None:
    """WooCommerce rows with an empty Stock take quantity 1 from In stock? = 1."""
    result = read(WOOCOMMERCE)

    assert result.total_rows == 25
    assert len(result.rows) == 25
    assert result.rejections == []
    assert (result.rows[QUANTITY] == 1).all()
    assert row(result, "woo-hoodie-with-logo")[PRICE_CENTS] == 4500
    assert row(result, "wp-pennant")[PRICE_CENTS] == 1105
    assert pd.isna(row(result, "woo-vneck-tee")[PRICE_CENTS])
    assert row(result, "Woo-tshirt-logo")[PRICE_CENTS] == 1800


def test_read_woocommerce_without_availability_rejects() -> None:
    """Without the availability setting every empty Stock cell is rejected."""
    options = {
        key: value
        for key, value in WOOCOMMERCE.items()
        if key not in ("empty_quantity", "availability")
    }

    result = read(options)

    assert len(result.rows) == 0
    assert len(result.rejections) == 25
    assert "quantity is empty" in result.rejections[0].reason


def test_read_shopify_handle_option_key() -> None:
    """Shopify keys come from Handle and Option1 Value; the multi-line body is skipped over."""
    result = read(SHOPIFY)

    assert result.total_rows == 21
    assert result.rejections == []
    assert row(result, "black-armchairs/Default Title")[QUANTITY] == 6
    assert row(result, "brown-pots/Default Title")[PRICE_CENTS] == 20000
    assert row(result, "gardening-gloves/Green")[QUANTITY] == 1
    assert row(result, "gardening-gloves/Yellow")[QUANTITY] == 3
    assert row(result, "gardening-gloves/Yellow")[PRICE_CENTS] == 1599


def test_read_shopify_inventory_apostrophe_barcodes() -> None:
    """Barcodes with Excel's apostrophe become GTIN-14 keys without a price."""
    result = read(SHOPIFY_INVENTORY)

    assert result.total_rows == 40
    assert len(result.rows) == 40
    assert result.rejections == []
    assert row(result, "08720602828605")[QUANTITY] == 0
    assert result.rows[PRICE_CENTS].isna().all()


def test_read_shopify_inventory_sku_keeps_case() -> None:
    """With key_case "lower" the upper-case SKUs match the Handle."""
    result = read(
        {
            **SHOPIFY_INVENTORY,
            "key_type": "sku",
            "key_case": "lower",
            "columns": {"key": "Variant SKU", "quantity": "Variant Inventory Qty"},
        }
    )

    assert "a1554244" in set(result.rows[KEY])


@pytest.mark.parametrize("engine", ["pyarrow", "c"])
def test_read_engines_agree(engine: str) -> None:
    """Both parsers give the same rows for the Shopify file with multi-line cells."""
    expected = read(SHOPIFY).rows

    result = read({**SHOPIFY, "engine": engine})

    pd.testing.assert_frame_equal(result.rows, expected)


# Parsing rules -------------------------------------------------------------


def test_read_leading_zero_keys_kept(tmp_path: Path) -> None:
    """SKU and barcode keys keep their leading zeros."""
    result = small(tmp_path, "sku,qty,price\n000123,1,1.00\n0456,2,2.00\n")

    assert set(result.rows[KEY]) == {"000123", "0456"}


def test_read_barcode_forms_collapse(tmp_path: Path) -> None:
    """UPC-A and EAN-13 forms of one barcode with equal values collapse to one row."""
    result = small(
        tmp_path,
        "upc,qty,price\n012345678905,1,1.00\n0012345678905,1,1.00\n",
        key_type="barcode",
        columns={"key": "upc", "quantity": "qty", "price": "price"},
    )

    assert result.rows[KEY].tolist() == ["00012345678905"]
    assert result.rejections == []


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("2", 2), ("2.0", 2), (" 3 ", 3), ("0", 0), ("007", 7)],
    ids=["int", "zero-fraction", "spaces", "zero", "leading-zeros"],
)
def test_read_quantity_accepted(tmp_path: Path, quantity: str, expected: int) -> None:
    """Whole-number quantities are read, including a zero fraction."""
    result = small(tmp_path, f"sku,qty,price\nA,{quantity},1.00\n")

    assert row(result, "A")[QUANTITY] == expected


def test_read_decimal_comma(tmp_path: Path) -> None:
    """With decimal "," and thousands ".", 1.234,50 is 123450 cents and 2,0 is 2."""
    result = small(
        tmp_path,
        "sku;qty;price\nA;2,0;1.234,50\nB;1.000;0,5\n",
        delimiter=";",
        decimal=",",
        thousands=".",
    )

    assert row(result, "A")[QUANTITY] == 2
    assert row(result, "A")[PRICE_CENTS] == 123450
    assert row(result, "B")[QUANTITY] == 1000
    assert row(result, "B")[PRICE_CENTS] == 50


@pytest.mark.parametrize(
    ("price", "cents"),
    [
        ("200.00", 20000),
        ("45", 4500),
        (".5", 50),
        ("45.", 4500),
        ("$12.34", 1234),
        ("12.34 USD", 1234),
        ("EUR 9", 900),
        ("€9.90", 990),
        ("288.9900", 28899),
    ],
    ids=[
        "two-places",
        "integer",
        "leading-point",
        "trailing-point",
        "dollar",
        "usd-suffix",
        "eur-prefix",
        "euro-sign",
        "zero-places",
    ],
)
def test_read_price_accepted(tmp_path: Path, price: str, cents: int) -> None:
    """Prices with at most two significant places and a currency marker become cents."""
    result = small(tmp_path, f'sku,qty,price\nA,1,"{price}"\n')

    assert result.rejections == []
    assert row(result, "A")[PRICE_CENTS] == cents


def test_read_empty_price_is_na(tmp_path: Path) -> None:
    """An empty price cell gives a missing price, not a rejection."""
    result = small(tmp_path, "sku,qty,price\nA,1,\n")

    assert result.rejections == []
    assert pd.isna(row(result, "A")[PRICE_CENTS])


def test_read_empty_quantity_number(tmp_path: Path) -> None:
    """empty_quantity = 0 reads an empty quantity cell as 0."""
    result = small(tmp_path, "sku,qty,price\nA,,1.00\n", empty_quantity=0)

    assert row(result, "A")[QUANTITY] == 0


def test_read_tab_delimited_utf8_bom(tmp_path: Path) -> None:
    """A TSV with a UTF-8 byte order mark reads with the first header intact."""
    (tmp_path / "stock.tsv").write_bytes("\ufeffsku\tqty\tprice\nA\t1\t2.50\n".encode())

    result = read(
        {
            "path": "stock.tsv",
            "delimiter": "\t",
            "columns": {"key": "sku", "quantity": "qty", "price": "price"},
        },
        tmp_path,
    )

    assert row(result, "A")[PRICE_CENTS] == 250


def test_read_cp1252_umlauts(tmp_path: Path) -> None:
    """Umlauts in a cp1252 file are decoded, not mangled."""
    name = write_csv(tmp_path, "Artikel;Bestand\nBrille-Größe-ä;4\n", encoding="cp1252")

    result = read(
        {
            "path": name,
            "encoding": "cp1252",
            "delimiter": ";",
            "columns": {"key": "Artikel", "quantity": "Bestand"},
        },
        tmp_path,
    )

    assert row(result, "Brille-Größe-ä")[QUANTITY] == 4


def test_read_header_row_skips_preamble(tmp_path: Path) -> None:
    """header_row = 3 skips two lines above the header, and line numbers count them."""
    result = small(tmp_path, "Stock export\n\nsku,qty,price\nA,1,1.00\nB,abc,1.00\n", header_row=3)

    assert row(result, "A")[QUANTITY] == 1
    assert [r.location for r in result.rejections] == ["stock.csv:5"]


def test_read_empty_file_zero_rows(tmp_path: Path) -> None:
    """An empty file gives zero rows and no error; the engine's guard decides."""
    result = small(tmp_path, "")

    assert len(result.rows) == 0
    assert result.total_rows == 0
    assert result.rows[QUANTITY].dtype == "Int64"


def test_read_header_only_zero_rows(tmp_path: Path) -> None:
    """A file with only a header gives zero rows."""
    result = small(tmp_path, "sku,qty,price\n")

    assert len(result.rows) == 0
    assert result.rejections == []


# Rejections ------------------------------------------------------------------

BAD_ROWS = (
    "sku,qty,price,note\n"  # line 1
    "A,1,1.00,ok\n"  # line 2
    ",2,1.00,missing key\n"  # line 3
    "B,abc,1.00,text quantity\n"  # line 4
    "C,-1,1.00,negative\n"  # line 5
    'D,1,1.00,"two\nlines"\n'  # lines 6-7
    "E,2.5,1.00,fraction\n"  # line 8
    "F,1,12.345,three places\n"  # line 9
    "G,1,abc,text price\n"  # line 10
    "H,1,1.00,first\n"  # line 11
    "\n"  # line 12
    "H,2,1.00,conflict\n"  # line 13
    "I,3,3.00,same\n"  # line 14
    "I,3,3.00,same again\n"  # line 15
    "J,,1.00,empty quantity\n"  # line 16
)


def test_read_rejections_locations_and_reasons(tmp_path: Path) -> None:
    """Each bad row is rejected at its physical line with a reason naming the value."""
    result = small(tmp_path, BAD_ROWS)

    found = {r.location: r for r in result.rejections}
    assert list(found) == [
        "stock.csv:3",
        "stock.csv:4",
        "stock.csv:5",
        "stock.csv:8",
        "stock.csv:9",
        "stock.csv:10",
        "stock.csv:11",
        "stock.csv:13",
        "stock.csv:16",
    ]
    assert "key column 'sku' is empty" in found["stock.csv:3"].reason
    assert found["stock.csv:3"].key is None
    assert "quantity 'abc' is not a whole number" in found["stock.csv:4"].reason
    assert found["stock.csv:4"].key == "B"
    assert "quantity '-1' is negative" in found["stock.csv:5"].reason
    assert "quantity '2.5' is not a whole number" in found["stock.csv:8"].reason
    assert "price '12.345' has more than two decimal places" in found["stock.csv:9"].reason
    assert "price 'abc' is not an amount" in found["stock.csv:10"].reason
    assert "quantity is empty" in found["stock.csv:16"].reason


def test_read_conflicting_duplicates_rejected(tmp_path: Path) -> None:
    """A key on rows with different values is rejected on every row, naming both lines."""
    result = small(tmp_path, BAD_ROWS)

    conflicts = [r for r in result.rejections if r.key == "H"]
    assert [r.location for r in conflicts] == ["stock.csv:11", "stock.csv:13"]
    assert "lines 11, 13" in conflicts[0].reason
    assert "H" not in set(result.rows[KEY])


def test_read_identical_duplicates_collapse(tmp_path: Path) -> None:
    """Identical duplicate rows are kept once without a rejection."""
    result = small(tmp_path, BAD_ROWS)

    assert row(result, "I")[QUANTITY] == 3
    assert not any(r.key == "I" for r in result.rejections)
    assert sorted(result.rows[KEY]) == ["A", "D", "I"]
    assert result.total_rows == 13


def test_read_multiple_reasons_one_rejection(tmp_path: Path) -> None:
    """A row with a bad quantity and a bad price gives one rejection with both reasons."""
    result = small(tmp_path, "sku,qty,price\nA,x,y\n")

    assert len(result.rejections) == 1
    assert "quantity 'x'" in result.rejections[0].reason
    assert "price 'y'" in result.rejections[0].reason


def test_read_shopify_line_after_multiline_body(tmp_path: Path) -> None:
    """A bad row after Shopify's multi-line Body (HTML) is reported at its physical line."""
    text = (DATA / "real/shopify_products_export_packt.csv").read_text(encoding="utf-8")
    lines = text.split("\n")
    # Physical line 9 is the round-table row, after black-armchairs on lines 3 to 8.
    assert lines[8].startswith("round-table,")
    lines[8] = lines[8].replace(",5,deny,", ",five,deny,")
    name = write_csv(tmp_path, "\n".join(lines))

    result = read({**SHOPIFY, "path": name}, tmp_path)

    assert [r.location for r in result.rejections] == ["stock.csv:9"]
    assert result.rejections[0].key == "round-table/Default Title"


def test_read_barcode_rejections(tmp_path: Path) -> None:
    """Bad and empty barcodes are rejected with the value and the fix."""
    result = small(
        tmp_path,
        "upc,qty\n8052892140275,1\n,1\n12ab,1\n",
        key_type="barcode",
        columns={"key": "upc", "quantity": "qty"},
    )

    reasons = [r.reason for r in result.rejections]
    assert "check digit is 4" in reasons[0]
    assert "Correct the barcode" in reasons[0]
    assert "barcode column 'upc' is empty" in reasons[1]
    assert "'12ab' contains characters other than digits" in reasons[2]


def test_read_availability_unknown_value(tmp_path: Path) -> None:
    """An availability value in neither list rejects the row and names the value."""
    result = small(
        tmp_path,
        "sku,qty,stock\nA,,1\nB,,0\nC,,backorder\nD,5,backorder\n",
        empty_quantity="availability",
        availability={"column": "stock"},
        columns={"key": "sku", "quantity": "qty"},
    )

    assert row(result, "A")[QUANTITY] == 1
    assert row(result, "B")[QUANTITY] == 0
    assert row(result, "D")[QUANTITY] == 5
    assert len(result.rejections) == 1
    assert "stock 'backorder' is in neither" in result.rejections[0].reason


# Errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "options", "fragment"),
    [
        (None, {}, "file not found"),
        (
            "sku,qty\nA,1\n",
            {"columns": {"key": "sku", "quantity": "Stock"}},
            "column 'Stock' is not in the header on line 1. The columns found are 'sku', 'qty'",
        ),
        ("sku;qty\nA;1\n", {}, "column 'sku' is not in the header"),
        ("sku,qty,qty\nA,1,2\n", {}, "column 'qty' appears more than once"),
        ('sku,qty\nA,1\nB,"1\n', {"engine": "c"}, "is not valid CSV"),
        ("sku,qty\nA,1\nB,1,2,3\n", {"engine": "pyarrow"}, "is not valid CSV"),
    ],
    ids=[
        "missing-file",
        "missing-column",
        "wrong-delimiter",
        "repeated-column",
        "ragged-c",
        "ragged-pyarrow",
    ],
)
def test_read_source_errors(
    tmp_path: Path, content: str | None, options: dict[str, Any], fragment: str
) -> None:
    """A file that cannot be read raises SourceError naming the file and the problem."""
    if content is not None:
        write_csv(tmp_path, content)
    settings = {"path": "stock.csv", "columns": {"key": "sku", "quantity": "qty"}, **options}

    with pytest.raises(SourceError) as caught:
        read(settings, tmp_path)

    assert fragment in str(caught.value)
    assert str(tmp_path / "stock.csv") in str(caught.value)


@pytest.mark.parametrize("engine", ["auto", "pyarrow", "c"])
def test_read_cp1252_as_utf8_errors(tmp_path: Path, engine: str) -> None:
    """A cp1252 file read as UTF-8 raises SourceError naming the line, never mangles it."""
    write_csv(tmp_path, "sku,qty\nA,1\nGröße,2\n", encoding="cp1252")

    with pytest.raises(SourceError, match=r"line 3 \(byte 0xf6\) is not valid utf-8.*cp1252"):
        read(
            {"path": "stock.csv", "engine": engine, "columns": {"key": "sku", "quantity": "qty"}},
            tmp_path,
        )


def test_read_auto_falls_back_to_c(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A whitespace-only line stops pyarrow, so "auto" reads the file with the C parser."""
    result = small(tmp_path, "sku,qty,price\nA,1,1.00\n   \nB,x,1.00\n")

    assert row(result, "A")[QUANTITY] == 1
    assert [r.location for r in result.rejections] == ["stock.csv:4"]
    assert "csv.engine_fallback" in caplog.text


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"delimiter": ";;"}, "one character"),
        ({"encoding": "latin-9000"}, "unknown encoding"),
        ({"decimal": ",", "thousands": ","}, "thousands and decimal"),
        ({"key_type": "barcode", "columns": {"key": ["a", "b"], "quantity": "q"}}, "one column"),
        ({"key_type": "composite", "columns": {"key": ["a", "b"], "quantity": "q"}}, "4 columns"),
        ({"key_type": "composite"}, "4 columns"),
        ({"empty_quantity": "availability"}, "needs an [availability] table"),
        ({"availability": {"column": "s"}}, 'only with empty_quantity = "availability"'),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
    ids=[
        "delimiter",
        "encoding",
        "same-separators",
        "barcode-list",
        "composite-two-columns",
        "composite-one-column",
        "no-availability",
        "unused-availability",
        "extra-key",
    ],
)
def test_options_invalid(options: dict[str, Any], fragment: str) -> None:
    """Invalid option combinations fail validation with a message naming the fix."""
    settings = {"path": "x.csv", "columns": {"key": "k", "quantity": "q"}, **options}
    context = SourceContext(job="test", config_dir=DATA, state_dir=DATA)

    with pytest.raises(ValidationError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        StockFileSource.from_mapping(settings, context=context)


def test_describe_names_path() -> None:
    """describe() names the adapter and the resolved file path."""
    context = SourceContext(job="test", config_dir=DATA, state_dir=DATA)
    source = StockFileSource.from_mapping(US, context=context)

    assert source.describe() == f"csv file {DATA / 'stock_export_us.csv'}"
