"""Tests of XLSX workbooks read by the stock-export file adapter (aliases ``csv`` and ``xlsx``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest
from pydantic import ValidationError

from adapters.base import KEY, PRICE_CENTS, QUANTITY, SourceContext, SourceResult
from adapters.stock_file import StockFileSource
from sync.errors import SourceError

DATA = Path(__file__).resolve().parents[1] / "data"
HEADER = ["UPC", "Brand", "Model", "Color Code", "Eye", "On Hand", "Retail Price"]
BARCODE = {
    "path": "stock.xlsx",
    "key_type": "barcode",
    "columns": {"key": "UPC", "quantity": "On Hand", "price": "Retail Price"},
}


def write_workbook(
    tmp_path: Path, sheets: dict[str, list[list[Any]]], name: str = "stock.xlsx"
) -> str:
    """Write a workbook with one sheet per entry, rows from A1 down."""
    workbook = openpyxl.Workbook()
    first = workbook.active
    assert first is not None
    workbook.remove(first)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(tmp_path / name)
    return name


def read(options: dict[str, Any], config_dir: Path) -> SourceResult:
    context = SourceContext(job="test", config_dir=config_dir, state_dir=config_dir)
    return StockFileSource.from_mapping(options, context=context).read()


def test_read_xlsx_numbers_and_text(tmp_path: Path) -> None:
    """Barcodes stored as numbers or as text with leading zeros, and float counts, read exactly."""
    write_workbook(
        tmp_path,
        {
            "Sheet1": [
                HEADER,
                [8052892140274, "Ray-Ban", "RX5154", "2000", 53, 2.0, 288.99],
                ["0012345678905", "Ray-Ban", "RX5154", "2012", 49, 3, 289],
                [8052892140281.0, "Ray-Ban", "RX5154", "2012", 53, 0.0, None],
            ]
        },
    )

    result = read(BARCODE, tmp_path)

    assert result.rows[KEY].tolist() == ["08052892140274", "00012345678905", "08052892140281"]
    assert result.rows[QUANTITY].tolist() == [2, 3, 0]
    assert result.rows[PRICE_CENTS].tolist()[:2] == [28899, 28900]
    assert result.rows[PRICE_CENTS].isna().tolist() == [False, False, True]
    assert result.rejections == []
    assert result.total_rows == 3


def test_read_xlsx_lost_digits_rejected(tmp_path: Path) -> None:
    """Barcodes whose digits a spreadsheet lost are rejected with a reason, not guessed."""
    write_workbook(
        tmp_path,
        {
            "Sheet1": [
                HEADER,
                ["8.05289E+12", "Ray-Ban", "RX5154", "2000", 53, 1, 10],
                [8052892140274.5, "Ray-Ban", "RX5154", "2000", 53, 1, 10],
                [12345678901234567, "Ray-Ban", "RX5154", "2000", 53, 1, 10],
                [8052892140274, "Ray-Ban", "RX5154", "2000", 53, 1, 10],
            ]
        },
    )

    result = read(BARCODE, tmp_path)
    reasons = {r.location: r.reason for r in result.rejections}

    assert result.rows[KEY].tolist() == ["08052892140274"]
    assert "scientific notation" in reasons["stock.xlsx:Sheet1!row 2"]
    assert "decimal part" in reasons["stock.xlsx:Sheet1!row 3"]
    assert "scientific notation" in reasons["stock.xlsx:Sheet1!row 4"]
    assert len(reasons) == 3


def test_read_xlsx_sku_number_too_long_rejected(tmp_path: Path) -> None:
    """An SKU stored as a number of more than 15 digits is rejected, because it was rounded."""
    write_workbook(tmp_path, {"Sheet1": [["SKU", "Qty"], [12345678901234567, 1], [123456, 2]]})
    options = {"path": "stock.xlsx", "columns": {"key": "SKU", "quantity": "Qty"}}

    result = read(options, tmp_path)

    assert result.rows[KEY].tolist() == ["123456"]
    assert [r.location for r in result.rejections] == ["stock.xlsx:Sheet1!row 2"]
    assert "more than 15 digits" in result.rejections[0].reason


def test_read_xlsx_second_sheet_header_row_empty_rows(tmp_path: Path) -> None:
    """sheet and header_row select the table, and empty rows are skipped with Excel row numbers."""
    write_workbook(
        tmp_path,
        {
            "Notes": [["not stock"]],
            "Stock": [
                ["Stock export, 2026-01-05"],
                [],
                ["SKU", "Qty", "Price"],
                ["FR-1", 2, 10],
                [],
                [None, None, None],
                ["FR-2", -1, 10],
                ["FR-3", 4, "12.50"],
            ],
        },
    )
    options = {
        "path": "stock.xlsx",
        "sheet": "Stock",
        "header_row": 3,
        "columns": {"key": "SKU", "quantity": "Qty", "price": "Price"},
    }

    result = read(options, tmp_path)

    assert result.rows[KEY].tolist() == ["FR-1", "FR-3"]
    assert result.rows[PRICE_CENTS].tolist() == [1000, 1250]
    assert [r.location for r in result.rejections] == ["stock.xlsx:Stock!row 7"]
    assert "negative" in result.rejections[0].reason
    assert result.total_rows == 3


def test_read_xlsx_first_sheet_default(tmp_path: Path) -> None:
    """Without sheet, the first sheet is read."""
    write_workbook(
        tmp_path, {"First": [["SKU", "Qty"], ["A", 1]], "Second": [["SKU", "Qty"], ["B", 2]]}
    )

    result = read({"path": "stock.xlsx", "columns": {"key": "SKU", "quantity": "Qty"}}, tmp_path)

    assert result.rows[KEY].tolist() == ["A"]


def test_read_xlsx_conflicting_duplicates_name_rows(tmp_path: Path) -> None:
    """A key on two rows with different quantities is rejected on both, naming the rows."""
    write_workbook(tmp_path, {"Sheet1": [["SKU", "Qty"], ["A", 1], ["B", 1], ["A", 2]]})

    result = read({"path": "stock.xlsx", "columns": {"key": "SKU", "quantity": "Qty"}}, tmp_path)

    assert [r.location for r in result.rejections] == [
        "stock.xlsx:Sheet1!row 2",
        "stock.xlsx:Sheet1!row 4",
    ]
    assert "(rows 2, 4)" in result.rejections[0].reason


def test_read_xlsx_composite_matches_csv(tmp_path: Path) -> None:
    """A workbook with numeric colour codes and eye sizes gives the keys the US CSV export gives."""
    csv_options = {
        "path": str(DATA / "stock_export_us.csv"),
        "key_type": "composite",
        "columns": {"key": ["Brand", "Model", "Color Code", "Eye"], "quantity": "On Hand"},
    }
    expected = read(csv_options, tmp_path)
    write_workbook(
        tmp_path,
        {
            "Sheet1": [
                ["Brand", "Model", "Color Code", "Eye", "On Hand"],
                ["Ray-Ban", "RX5154", 2000, 53.0, 2.0],
            ]
        },
    )

    result = read({**csv_options, "path": "stock.xlsx"}, tmp_path)

    assert result.rows[KEY].tolist() == ["rayban|rx5154|2000|53"]
    assert "rayban|rx5154|2000|53" in set(expected.rows[KEY])


def test_read_xlsx_price_currency(tmp_path: Path) -> None:
    """With currency set, a workbook price in another currency is rejected at its row."""
    write_workbook(
        tmp_path,
        {"Sheet1": [["SKU", "Qty", "Price"], ["A", 1, "5 €"], ["B", 1, 5.5], ["C", 1, "$5"]]},
    )
    options = {
        "path": "stock.xlsx",
        "currency": "USD",
        "columns": {"key": "SKU", "quantity": "Qty", "price": "Price"},
    }

    result = read(options, tmp_path)

    assert result.rows[KEY].tolist() == ["B", "C"]
    assert result.rows[PRICE_CENTS].tolist() == [550, 500]
    assert [r.location for r in result.rejections] == ["stock.xlsx:Sheet1!row 2"]
    assert "price '5 €' is in EUR, but currency is USD" in result.rejections[0].reason


def test_read_xlsx_empty_sheet_zero_rows(tmp_path: Path) -> None:
    """A sheet without a header gives zero rows and no error."""
    write_workbook(tmp_path, {"Sheet1": []})

    result = read({"path": "stock.xlsx", "columns": {"key": "SKU", "quantity": "Qty"}}, tmp_path)

    assert len(result.rows) == 0
    assert result.rejections == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"sheet": "Missing"}, "has no sheet 'Missing'. The sheets are 'Sheet1'"),
        (
            {"columns": {"key": "Barcode", "quantity": "Qty"}},
            "column 'Barcode' is not in the header on row 1 of sheet 'Sheet1'",
        ),
        ({"path": "missing.xlsx"}, "file not found"),
        ({"path": "not-a-workbook.xlsx"}, "is not a readable XLSX workbook"),
    ],
    ids=["sheet-missing", "column-missing", "file-missing", "not-a-workbook"],
)
def test_read_xlsx_source_errors(tmp_path: Path, options: dict[str, Any], fragment: str) -> None:
    """Workbook problems raise SourceError with the fix in the message."""
    write_workbook(tmp_path, {"Sheet1": [["SKU", "Qty"], ["A", 1]]})
    (tmp_path / "not-a-workbook.xlsx").write_text("SKU,Qty\nA,1\n")
    base = {"path": "stock.xlsx", "columns": {"key": "SKU", "quantity": "Qty"}}

    with pytest.raises(SourceError) as raised:
        read({**base, **options}, tmp_path)

    assert fragment in str(raised.value)


def test_format_override_and_describe(tmp_path: Path) -> None:
    """format = "xlsx" reads a workbook with another extension, and describe() names the format."""
    write_workbook(tmp_path, {"Sheet1": [["SKU", "Qty"], ["A", 1]]}, name="stock.export")
    options = {
        "path": "stock.export",
        "format": "xlsx",
        "columns": {"key": "SKU", "quantity": "Qty"},
    }
    context = SourceContext(job="test", config_dir=tmp_path, state_dir=tmp_path)
    source = StockFileSource.from_mapping(options, context=context)

    assert source.read().rows[KEY].tolist() == ["A"]
    assert source.describe() == f"xlsx file {tmp_path / 'stock.export'}"


def test_options_sheet_with_csv_invalid() -> None:
    """sheet on a file read as CSV is a configuration error."""
    with pytest.raises(ValidationError, match="sheet applies to workbooks only"):
        StockFileSource.options_model.model_validate(
            {"path": "stock.csv", "sheet": "Stock", "columns": {"key": "SKU", "quantity": "Qty"}}
        )
