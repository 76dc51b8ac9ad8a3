"""Tests of the CSV stock-export adapter (alias ``csv``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from pydantic import ValidationError

from adapters.base import KEY, PRICE_CENTS, QUANTITY, SourceContext, SourceResult
from adapters.normalise import normalise_cells
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
    [
        ("2", 2),
        ("2.0", 2),
        (" 3 ", 3),
        ("0", 0),
        ("007", 7),
        ("0000000007", 7),
        ("000000000000123456789", 123456789),
    ],
    ids=[
        "int",
        "zero-fraction",
        "spaces",
        "zero",
        "leading-zeros",
        "ten-digits",
        "nine-significant",
    ],
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


# Cut, ragged and changing files ---------------------------------------------

US_COLUMNS = {"key": "Item Code", "quantity": "On Hand", "price": "Retail Price"}
US_HEADER = "Item Code,UPC,Brand,Model,Color Code,Color,Eye,Bridge,Temple,On Hand,Retail Price"
CUT_REASON = "may have been cut while it was being written"


def us_export(tmp_path: Path, tail: str, prefix: str = "") -> SourceResult:
    """Read two complete US rows followed by ``tail``, as the file's last bytes."""
    text = (
        f"{prefix}{US_HEADER}\r\n"
        "FR-1,8052892140274,Ray-Ban,RX5154,2000,Shiny Black,53,17,145,2,288.99\r\n"
        "FR-2,8052898744223,Ray-Ban,RX5154,2000,Shiny Black,49,21,140,2,289.00\r\n"
        f"{tail}"
    )
    name = write_csv(tmp_path, text)
    return read({"path": name, "columns": US_COLUMNS}, tmp_path)


@pytest.mark.parametrize("engine", ["auto", "pyarrow", "c"])
def test_read_cut_in_price_rejected(tmp_path: Path, engine: str) -> None:
    """A last row cut inside its price (248.99 to 248.) is rejected, not read as 248.00."""
    name = write_csv(tmp_path, f"{US_HEADER}\nFR-1,1,Ray-Ban,RX,20,Black,53,17,145,12,248.")

    result = read({"path": name, "engine": engine, "columns": US_COLUMNS}, tmp_path)

    assert len(result.rows) == 0
    assert [r.location for r in result.rejections] == ["stock.csv:2"]
    assert CUT_REASON in result.rejections[0].reason
    assert "price '248.' is not an amount" in result.rejections[0].reason
    assert result.rejections[0].key == "FR-1"


@pytest.mark.parametrize("engine", ["auto", "pyarrow", "c"])
def test_read_cut_in_quantity_rejected(
    tmp_path: Path, engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A last row cut inside its quantity has 10 of 11 cells and is rejected at its line."""
    text = (
        f"{US_HEADER}\n"
        "FR-1,1,Ray-Ban,RX,20,Black,53,17,145,2,1.00\n"
        "FR-2,1,Ray-Ban,RX,20,Black,53,17,145,1"
    )
    name = write_csv(tmp_path, text)

    result = read({"path": name, "engine": engine, "columns": US_COLUMNS}, tmp_path)

    assert result.rows[KEY].tolist() == ["FR-1"]
    assert [r.location for r in result.rejections] == ["stock.csv:3"]
    assert CUT_REASON in result.rejections[0].reason
    assert "the row has 10 cells, but the header has 11" in result.rejections[0].reason
    assert result.rejections[0].key == "FR-2"
    assert "csv.engine_fallback" not in caplog.text


def test_read_us_export_cut_mid_row(tmp_path: Path) -> None:
    """The sample export cut inside its last price loses that row only."""
    text = (DATA / "stock_export_us.csv").read_bytes()
    (tmp_path / "stock_export_us.csv").write_bytes(text.rstrip(b"\r\n")[:-2])

    result = read(US, tmp_path)

    assert len(result.rows) == 499
    assert [r.location for r in result.rejections] == ["stock_export_us.csv:501"]
    assert CUT_REASON in result.rejections[0].reason


def test_read_final_newline_not_required(tmp_path: Path) -> None:
    """With require_final_newline = false, a last line without a line break is read."""
    result = small(tmp_path, "sku,qty,price\nA,1,1.00\nB,2,2.50", require_final_newline=False)

    assert row(result, "B")[PRICE_CENTS] == 250
    assert result.rejections == []


@pytest.mark.parametrize(
    "tail",
    ["FR-3,1,B,M,C,K,1,2,3,4,5.00\n", "FR-3,1,B,M,C,K,1,2,3,4,5.00\r", "   ", "\n\n"],
    ids=["lf", "cr", "blank-last-line", "blank-lines"],
)
def test_read_terminated_last_line_accepted(tmp_path: Path, tail: str) -> None:
    """A file ending with a line break, or with a blank last line, loses no row."""
    result = us_export(tmp_path, tail)

    assert result.rejections == []


def test_read_final_newline_utf16(tmp_path: Path) -> None:
    """The last line break is found in a UTF-16 file longer than the bytes read from its end."""
    lines = "".join(f"K{index},{index},1.00\n" for index in range(600))
    name = write_csv(tmp_path, f"\ufeffsku,qty,price\n{lines}", encoding="utf-16-le")
    options = {"path": name, "encoding": "utf-16", "columns": {"key": "sku", "quantity": "qty"}}

    result = read(options, tmp_path)

    assert result.rejections == []
    assert len(result.rows) == 600


RAGGED = (
    "sku,qty,price,note\n"  # line 1
    "A,1,1.00,ok\n"  # line 2
    "B,2,2.00\n"  # line 3: one cell short
    "C,3,3.00,x,extra\n"  # line 4: one cell too many
    "\n"  # line 5
    "  \n"  # line 6
    'D,4,4.00,"two\nlines"\n'  # lines 7-8
    "E,5\n"  # line 9: two cells short
    "F,6,6.00,ok\n"  # line 10
)


@pytest.mark.parametrize("engine", ["auto", "pyarrow", "c"])
def test_read_ragged_rows_rejected(tmp_path: Path, engine: str) -> None:
    """Rows with fewer or more cells than the header are rejected at their lines; others read."""
    result = small(tmp_path, RAGGED, engine=engine)

    assert sorted(result.rows[KEY]) == ["A", "D", "F"]
    assert row(result, "F")[PRICE_CENTS] == 600
    found = {r.location: r for r in result.rejections}
    assert list(found) == ["stock.csv:3", "stock.csv:4", "stock.csv:9"]
    assert "the row has 3 cells, but the header has 4" in found["stock.csv:3"].reason
    assert "the row has 5 cells, but the header has 4" in found["stock.csv:4"].reason
    assert "the row has 2 cells, but the header has 4" in found["stock.csv:9"].reason
    assert [r.key for r in result.rejections] == ["B", "C", "E"]
    assert result.total_rows == 6


@pytest.mark.parametrize("engine", ["auto", "pyarrow", "c"])
@pytest.mark.parametrize("blank", ["   \r\n", "\n\n", "\t \n"], ids=["spaces", "empty", "tab"])
def test_read_blank_lines_before_header(tmp_path: Path, engine: str, blank: str) -> None:
    """Blank and whitespace-only lines above the header are skipped by every engine."""
    text = (DATA / "stock_export_us.csv").read_text(encoding="utf-8")
    name = write_csv(tmp_path, blank + text)

    result = read({**US, "path": name, "engine": engine}, tmp_path)

    assert len(result.rows) == 500
    assert result.rejections == []


@pytest.mark.parametrize("engine", ["auto", "pyarrow", "c"])
def test_read_blank_line_before_header_locations(tmp_path: Path, engine: str) -> None:
    """A rejected row below a skipped blank line is reported at its physical line."""
    result = small(tmp_path, "   \r\nsku,qty,price\r\nA,1,1.00\r\nB,x,1.00\r\n", engine=engine)

    assert [r.location for r in result.rejections] == ["stock.csv:4"]


@pytest.mark.parametrize("engine", ["auto", "pyarrow", "c"])
def test_read_header_changed_between_reads(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header rewritten after the adapter checked it raises SourceError, not a traceback."""
    check_columns = StockFileSource._check_columns

    def check_then_rewrite(self: StockFileSource, *args: Any, **kwargs: Any) -> None:
        check_columns(self, *args, **kwargs)
        (tmp_path / "stock.csv").write_text("code,count\nA,1\n")

    monkeypatch.setattr(StockFileSource, "_check_columns", check_then_rewrite)

    with pytest.raises(SourceError, match="lost a configured column between two reads"):
        small(tmp_path, "sku,qty,price\nA,1,1.00\n", engine=engine)


def test_read_file_replaced_before_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file replaced before the rejected rows get line numbers raises SourceError."""

    def replace_then_normalise(*args: Any, **kwargs: Any) -> Any:
        # The exporter writes a new version and renames it over the old one.
        (tmp_path / "new.csv").write_text("sku,qty,price\n\n\nA,1,1.00\nB,x,1.00\n")
        os.replace(tmp_path / "new.csv", tmp_path / "stock.csv")
        return normalise_cells(*args, **kwargs)

    monkeypatch.setattr("adapters.stock_file.normalise_cells", replace_then_normalise)

    with pytest.raises(SourceError, match="changed while it was read"):
        small(tmp_path, "sku,qty,price\nA,1,1.00\nB,x,1.00\n")


@pytest.mark.parametrize("engine", ["auto", "c"])
def test_read_file_grown_between_reads(
    tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grows between the header read and the cell read raises SourceError."""
    check_columns = StockFileSource._check_columns

    def check_then_append(self: StockFileSource, *args: Any, **kwargs: Any) -> None:
        check_columns(self, *args, **kwargs)
        with (tmp_path / "stock.csv").open("a") as handle:
            handle.write("B,2,2.00\n")

    monkeypatch.setattr(StockFileSource, "_check_columns", check_then_append)

    with pytest.raises(SourceError, match="changed while it was read"):
        small(tmp_path, "sku,qty,price\nA,1,1.00\n", engine=engine)


# Large cells -------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["auto", "c"])
def test_read_large_unused_cell(tmp_path: Path, engine: str) -> None:
    """A 200,000-character cell in an unused column does not stop the line numbers of rejections."""
    text = f"sku,qty,price,note\nA,1,1.00,{'x' * 200_000}\nB,x,1.00,short\n"

    result = small(tmp_path, text, engine=engine)

    assert row(result, "A")[QUANTITY] == 1
    assert [r.location for r in result.rejections] == ["stock.csv:3"]


def test_read_csv_error_names_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A csv module error while finding line numbers names the line it happened on."""
    monkeypatch.setattr("adapters.stock_file._allow_fields_up_to", lambda size: None)
    limit = csv.field_size_limit()
    csv.field_size_limit(1000)
    try:
        with pytest.raises(SourceError, match=r"is not valid CSV: line 3: field larger"):
            small(tmp_path, f"sku,qty,price,note\nA,1,1.00,\nB,1,1.00,{'x' * 2000}\nC,x,1.00,\n")
    finally:
        csv.field_size_limit(limit)


# Currency ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "currency", "fragment"),
    [
        ("5€", "USD", "price '5€' is in EUR, but currency is USD"),
        ("EUR 5", "USD", "price 'EUR 5' is in EUR, but currency is USD"),
        ("£5", "EUR", "price '£5' is in GBP, but currency is EUR"),
        ("USD 5 EUR", "USD", "price 'USD 5 EUR' names two currencies, USD and EUR"),
        ("USD 5 EUR", None, "price 'USD 5 EUR' names two currencies, USD and EUR"),
        ("$5€", None, "price '$5€' names two currencies, USD and EUR"),
    ],
    ids=["euro-sign", "eur-code", "pound-sign", "two-codes", "two-codes-any", "two-signs-any"],
)
def test_read_price_currency_rejected(
    tmp_path: Path, price: str, currency: str | None, fragment: str
) -> None:
    """A price in another currency than ``currency``, or in two currencies, is rejected."""
    result = small(tmp_path, f"sku,qty,price\nA,1,{price}\nB,1,5\n", currency=currency)

    assert [r.location for r in result.rejections] == ["stock.csv:2"]
    assert fragment in result.rejections[0].reason
    assert row(result, "B")[PRICE_CENTS] == 500


@pytest.mark.parametrize("price", ["$5", "5 USD", "$5 USD", "USD5", "5"])
def test_read_price_currency_accepted(tmp_path: Path, price: str) -> None:
    """With currency = "USD", prices marked USD, by sign or code, or unmarked are read."""
    result = small(tmp_path, f"sku,qty,price\nA,1,{price}\n", currency="USD")

    assert result.rejections == []
    assert row(result, "A")[PRICE_CENTS] == 500


def test_read_german_price_suggests_thousands(tmp_path: Path) -> None:
    """A German price with a thousands dot names the thousands option and a euro example."""
    result = small(tmp_path, "sku;qty;price\nA;1;1.299,00\n", delimiter=";", decimal=",")

    reason = result.rejections[0].reason
    assert "price '1.299,00' is not an amount" in reason
    assert (
        "Write it like 289,00, optionally with a currency sign or code such as € or EUR" in reason
    )
    assert 'set thousands = "."' in reason


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
    ],
    ids=[
        "missing-file",
        "missing-column",
        "wrong-delimiter",
        "repeated-column",
        "ragged-c",
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


@pytest.mark.parametrize(
    "error", [pa.ArrowInvalid("CSV parse error"), pa.ArrowNotImplementedError("unsupported")]
)
def test_read_auto_falls_back_to_c(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    error: pa.ArrowException,
) -> None:
    """When pyarrow fails on a file, "auto" reads it with the C parser and logs the fallback."""

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("pyarrow.csv.read_csv", fail)

    result = small(tmp_path, "sku,qty,price\nA,1,1.00\nB,x,1.00\n")

    assert row(result, "A")[QUANTITY] == 1
    assert [r.location for r in result.rejections] == ["stock.csv:3"]
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
        ({"currency": "usd"}, "should match pattern"),
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
        "currency-code",
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
