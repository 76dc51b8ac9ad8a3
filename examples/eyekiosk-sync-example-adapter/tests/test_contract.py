"""Run the eyekiosk-sync stock-source contract over the jsonlines adapter."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from eyekiosk_sync_jsonlines import JsonLinesSource

from adapters.testing import StockRow, StockSourceCase, StockSourceContract, build_source


class JsonLinesCase(StockSourceCase):
    """Writes the rows as JSON objects, one per line, with prices as text."""

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> JsonLinesSource:
        lines = [_record(row) for row in rows]
        return self._source(tmp_path, lines)

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> JsonLinesSource:
        bad = ['{"sku": "BAD-1", "quantity": -1}', "not json", '["a list"]']
        return self._source(tmp_path, [*bad, *(_record(row) for row in rows)])

    def _source(self, tmp_path: Path, lines: list[str]) -> JsonLinesSource:
        (tmp_path / "stock.jsonl").write_text("".join(f"{line}\n" for line in lines))
        source = build_source(JsonLinesSource, {"path": "stock.jsonl"}, tmp_path)
        assert isinstance(source, JsonLinesSource)
        return source


def _record(row: StockRow) -> str:
    record: dict[str, object] = {"sku": row.key, "quantity": row.quantity}
    if row.price_cents is not None:
        record["price"] = f"{row.price_cents // 100}.{row.price_cents % 100:02d}"
    return json.dumps(record)


class TestJsonLinesContract(StockSourceContract):
    @pytest.fixture
    def stock_case(self) -> StockSourceCase:
        return JsonLinesCase()


def test_read_bad_lines_located(tmp_path: Path) -> None:
    """Each bad line is rejected at its line number with the reason."""
    source = JsonLinesCase().make_source_with_bad_rows(tmp_path, [StockRow("A", 1, None)])

    result = source.read()

    assert [r.location for r in result.rejections] == [
        "stock.jsonl:1",
        "stock.jsonl:2",
        "stock.jsonl:3",
    ]
    assert "negative" in result.rejections[0].reason
    assert "not valid JSON" in result.rejections[1].reason
    assert "not a JSON object" in result.rejections[2].reason
    assert list(result.rows["key"]) == ["A"]
