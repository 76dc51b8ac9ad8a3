"""The folder order sink: atomic files, mode 0600, one file per order, JSON and CSV layouts."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from adapters.base import OrderDelivery, SourceContext
from adapters.order_folder import FolderOrderSink, file_stem, write_atomically
from sync.errors import SinkError

ORDER: dict[str, Any] = {
    "id": "ord_00000007",
    "status": "pending",
    "created_at": "2026-12-04T19:57:07.000001Z",
    "updated_at": "2026-12-04T19:57:07.000001Z",
    "currency": "USD",
    "total": "578.00",
    "customer": {"name": "Avery Okafor", "email": "avery.okafor1@example.com"},
    "items": [
        {"frame_id": "frm_1", "sku": "FR-1", "upc": "012", "quantity": 1, "unit_price": "289.00"},
        {"frame_id": "frm_2", "sku": "FR-2", "upc": None, "quantity": 1, "unit_price": "289.00"},
    ],
    "has_prescription": True,
    "payment": {"method": "card", "status": "paid", "amount": "578.00"},
}
RX: dict[str, Any] = {
    "id": "rx_00000003",
    "order_id": "ord_00000007",
    "created_at": "2026-12-04T19:57:07.000001Z",
    "od": {"sphere": "-1.25", "cylinder": "-0.50", "axis": 90, "add": None},
    "os": {"sphere": "-1.00", "cylinder": None, "axis": None, "add": None},
    "pd": {"binocular": "63.0", "od": "31.5", "os": "31.5"},
    "segment_height": {"od": None, "os": None},
}


def _sink(tmp_path: Path, **options: Any) -> FolderOrderSink:
    context = SourceContext(job="shop", config_dir=tmp_path, state_dir=tmp_path)
    sink = FolderOrderSink.from_mapping({"path": "orders", **options}, context=context)
    assert isinstance(sink, FolderOrderSink)
    return sink


def _delivery(order: dict[str, Any] = ORDER) -> OrderDelivery:
    return OrderDelivery(order=order, prescriptions=[RX])


def test_folder_json_file_per_order(tmp_path: Path) -> None:
    """Each order becomes <id>.json with mode 0600, in a folder created with mode 0700."""
    sink = _sink(tmp_path, prescriptions=True)

    results = sink.deliver([_delivery(), _delivery({**ORDER, "id": "ord_00000008"})])

    folder = tmp_path / "orders"
    assert [result.delivered for result in results] == [True, True]
    assert sorted(path.name for path in folder.iterdir()) == [
        "ord_00000007.json",
        "ord_00000008.json",
    ]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in folder.iterdir())
    body = json.loads((folder / "ord_00000007.json").read_text(encoding="utf-8"))
    assert body == {"order": ORDER, "prescriptions": [RX]}


def test_folder_prescriptions_off_by_default(tmp_path: Path) -> None:
    """Without prescriptions = true, no prescription reaches the file."""
    sink = _sink(tmp_path)

    sink.deliver([_delivery()])

    body = json.loads((tmp_path / "orders" / "ord_00000007.json").read_text(encoding="utf-8"))
    assert "prescriptions" not in body
    assert not sink.wants_prescriptions


def test_folder_redelivery_replaces_file(tmp_path: Path) -> None:
    """Delivering a newer version rewrites the same file; no second file, no temp file."""
    sink = _sink(tmp_path)

    sink.deliver([_delivery()])
    sink.deliver([_delivery({**ORDER, "status": "shipped"})])

    files = list((tmp_path / "orders").iterdir())
    assert [path.name for path in files] == ["ord_00000007.json"]
    assert json.loads(files[0].read_text(encoding="utf-8"))["order"]["status"] == "shipped"


def test_folder_csv_layout(tmp_path: Path) -> None:
    """CSV writes one row per line with the order's fields, and prescriptions to <id>.rx.csv."""
    sink = _sink(tmp_path, format="csv", prescriptions=True)

    sink.deliver([_delivery()])

    folder = tmp_path / "orders"
    with (folder / "ord_00000007.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with (folder / "ord_00000007.rx.csv").open(newline="", encoding="utf-8") as handle:
        rx_rows = list(csv.DictReader(handle))
    assert [row["frame_id"] for row in rows] == ["frm_1", "frm_2"]
    assert [row["line_number"] for row in rows] == ["1", "2"]
    assert rows[0]["customer_name"] == "Avery Okafor"
    assert rows[1]["upc"] == ""
    assert rows[0]["has_prescription"] == "true"
    assert rows[0]["payment_status"] == "paid"
    assert rx_rows[0]["od_sphere"] == "-1.25"
    assert rx_rows[0]["od_axis"] == "90"
    assert rx_rows[0]["pd_binocular"] == "63.0"
    assert rx_rows[0]["os_cylinder"] == ""


def test_folder_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    """A write that fails (target is a folder) fails that order only and removes its temp file."""
    sink = _sink(tmp_path)
    (tmp_path / "orders" / "ord_00000007.json").mkdir(parents=True)

    results = sink.deliver([_delivery(), _delivery({**ORDER, "id": "ord_00000008"})])

    names = sorted(path.name for path in (tmp_path / "orders").iterdir())
    assert [result.delivered for result in results] == [False, True]
    assert "cannot write" in (results[0].error or "")
    assert names == ["ord_00000007.json", "ord_00000008.json"]


def test_folder_path_is_file_raises_sink_error(tmp_path: Path) -> None:
    """A sink path that is a file makes the whole sink unreachable."""
    (tmp_path / "orders").write_text("", encoding="utf-8")

    with pytest.raises(SinkError):
        _sink(tmp_path).deliver([_delivery()])


def test_write_atomically_cleans_up_on_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the rename fails, the old file stays and no temp file is left."""
    target = tmp_path / "ord.json"
    target.write_bytes(b"old")

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        write_atomically(target, b"new")

    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["ord.json"]


@pytest.mark.parametrize(
    ("order_id", "expected_start"),
    [
        ("ord_00000001", "ord_00000001"),
        ("../etc/passwd", "_etc_passwd_"),
        ("..", "_"),
        (".x", "x_"),
    ],
    ids=["plain", "traversal", "dotdot", "hidden"],
)
def test_file_stem_sanitised(order_id: str, expected_start: str) -> None:
    """Unsafe ids get a safe stem with a hash; a plain id is kept as it is."""
    stem = file_stem(order_id)

    assert stem.startswith(expected_start) or stem == expected_start
    assert "/" not in stem
    assert not stem.startswith(".")
    if order_id == "ord_00000001":
        assert stem == order_id
    else:
        assert stem != file_stem(order_id + "x")
