"""The CSV order status source: columns, status_map, rejections and duplicates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.base import SourceContext
from adapters.status_file import StatusFileSource
from sync.errors import SourceError


def _source(tmp_path: Path, text: str, **options: Any) -> StatusFileSource:
    (tmp_path / "statuses.csv").write_text(text, encoding="utf-8")
    context = SourceContext(job="shop", config_dir=tmp_path, state_dir=tmp_path)
    source = StatusFileSource.from_mapping({"path": "statuses.csv", **options}, context=context)
    assert isinstance(source, StatusFileSource)
    return source


def test_status_file_default_columns(tmp_path: Path) -> None:
    """order_id and status columns are read, trimmed and lower-cased to Eyekiosk statuses."""
    result = _source(
        tmp_path, "order_id,status\nord_1, Shipped \nord_2,in_progress\n"
    ).read_statuses()

    assert list(result.rows["order_id"]) == ["ord_1", "ord_2"]
    assert list(result.rows["status"]) == ["shipped", "in_progress"]
    assert result.rejections == []


def test_status_file_columns_and_map(tmp_path: Path) -> None:
    """Configured headers and a case-insensitive status_map translate the practice's words."""
    text = "Job;State\nord_1;in lab\nord_2;SENT\n"
    source = _source(
        tmp_path, text, delimiter=";", columns={"order_id": "Job", "status": "State"},
        status_map={"In Lab": "in_progress", "Sent": "shipped"},
    )  # fmt: skip

    result = source.read_statuses()

    assert list(result.rows["status"]) == ["in_progress", "shipped"]


REJECTION_CASES = [
    ("order_id,status\nord_1,lost\n", "statuses.csv:2", "unknown status 'lost'", "unknown-word"),
    ("order_id,status\n,shipped\n", "statuses.csv:2", "empty order_id", "empty-id"),
    ("order_id,status\nord_1,shipped\nord_1,pending\n", "statuses.csv:3", "several statuses",
     "conflicting-duplicate"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "location", "reason"),
    [case[:3] for case in REJECTION_CASES],
    ids=[case[3] for case in REJECTION_CASES],
)
def test_status_file_rejections(tmp_path: Path, text: str, location: str, reason: str) -> None:
    """Bad rows are rejected with file, line and reason, and left out of the rows."""
    result = _source(tmp_path, text).read_statuses()

    assert result.rows.empty
    assert any(r.location == location and reason in r.reason for r in result.rejections)


def test_status_file_empty_status_skipped(tmp_path: Path) -> None:
    """An empty status cell means nothing to send: no row and no rejection."""
    result = _source(
        tmp_path, "order_id,status\nord_1,\nord_2,shipped\nord_2,shipped\n"
    ).read_statuses()

    assert list(result.rows["order_id"]) == ["ord_2"]
    assert result.rejections == []


def test_status_file_missing_column(tmp_path: Path) -> None:
    """A file without the named column cannot be read at all."""
    with pytest.raises(SourceError, match="missing column"):
        _source(tmp_path, "id,state\nord_1,shipped\n").read_statuses()


def test_status_file_missing_file(tmp_path: Path) -> None:
    """A missing file is a SourceError naming the file."""
    source = _source(tmp_path, "")
    (tmp_path / "statuses.csv").unlink()

    with pytest.raises(SourceError, match=r"statuses\.csv"):
        source.read_statuses()


def test_status_file_map_to_unknown_status(tmp_path: Path) -> None:
    """status_map values must be Eyekiosk statuses."""
    with pytest.raises(ValidationError, match="not Eyekiosk statuses"):
        _source(tmp_path, "", status_map={"Done": "finished"})
