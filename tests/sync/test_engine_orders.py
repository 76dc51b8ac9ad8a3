"""Cycles of a job that also pulls orders: delivery to the sink and no oversell."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.sync.harness import DEFAULT_SCOPES, read_export
from tests.sync.orders_harness import ORDER_SCOPES, OrderInstallation

INVENTORY = "POST /api/v1/partner/inventory"
SCOPES = DEFAULT_SCOPES + ORDER_SCOPES


def _installation(
    tmp_path: Path, sandbox: SandboxServer, settle_minutes: float
) -> OrderInstallation:
    return OrderInstallation.with_orders(
        tmp_path,
        sandbox,
        scopes=SCOPES,
        orders_options=f"overlap_s = 5\nsettle_minutes = {settle_minutes}",
        page_limit=100,
    )


def _stocked_row(rows: list[dict[str, str]]) -> dict[str, str]:
    return next(row for row in rows if int(row["On Hand"]) >= 2)


def _quantity(installation: OrderInstallation, sku: str) -> int:
    frame = installation.store.find_frame(sku)
    assert frame is not None
    return int(frame["quantity"])


@pytest.mark.parametrize(
    ("settle_minutes", "held_back"), [(60, True), (0, False)], ids=["settling", "settled"]
)
def test_engine_kiosk_sale_netted_from_stale_export(
    tmp_path: Path, sandbox: SandboxServer, settle_minutes: float, held_back: bool
) -> None:
    """A kiosk sale the export does not count yet is held back instead of put on sale again.

    With a settle window of 0 the sale counts as booked at once, so the stale
    export's quantity goes out: the oversell the window prevents.
    """
    installation = _installation(tmp_path, sandbox, settle_minutes)
    installation.sync()
    row = _stocked_row(read_export())
    sku, exported = row["Item Code"], int(row["On Hand"])
    frame = installation.store.find_frame(sku)
    assert frame is not None
    installation.store.create_sales(1, frame_ids=[frame["id"]])
    sold = exported - _quantity(installation, sku)

    report = installation.sync()

    assert sold >= 1
    assert report.orders is not None
    assert report.orders["delivered"] == 1
    assert len(installation.delivered_orders()) == 1
    if held_back:
        assert report.netted_units == sold
        assert report.netting[0]["key"] == sku
        assert INVENTORY not in report.requests
        assert _quantity(installation, sku) == exported - sold
    else:
        assert report.netted_units == 0
        assert report.requests[INVENTORY] == 1
        assert _quantity(installation, sku) == exported


def test_engine_netting_ends_when_export_catches_up(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Once the export counts the sale and the window has passed, nothing more is held back."""
    installation = _installation(tmp_path, sandbox, 60)
    installation.sync()
    rows = read_export()
    row = _stocked_row(rows)
    sku, exported = row["Item Code"], int(row["On Hand"])
    frame = installation.store.find_frame(sku)
    assert frame is not None
    installation.store.create_sales(1, frame_ids=[frame["id"]])
    installation.sync()
    remaining = _quantity(installation, sku)

    row["On Hand"] = str(remaining)
    installation.write_rows(rows)
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace("settle_minutes = 60", "settle_minutes = 0"), encoding="utf-8"
    )
    report = installation.sync()

    assert remaining < exported
    assert report.netted_units == 0
    assert report.changed == 0
    assert _quantity(installation, sku) == remaining


def test_engine_orders_failure_keeps_inventory_push(tmp_path: Path, sandbox: SandboxServer) -> None:
    """An order sink that cannot write makes the run partial but the stock push still happens."""
    installation = _installation(tmp_path, sandbox, 60)
    (tmp_path / "orders").write_text("a file where the sink folder should be", encoding="utf-8")
    frame = installation.store.find_frame(read_export()[0]["Item Code"])
    assert frame is not None
    installation.store.create_sales(1, frame_ids=[frame["id"]])

    report = installation.sync()

    assert report.outcome == "partial"
    assert report.orders_failed
    assert report.requests[INVENTORY] == 1
    assert report.updates_accepted >= 25


def test_engine_missing_status_file_keeps_inventory_push(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A status source that cannot be read makes the run partial; the stock push still happens."""
    installation = OrderInstallation.with_orders(
        tmp_path,
        sandbox,
        scopes=SCOPES,
        status_source='adapter = "status-csv"\npath = "no-such-file.csv"',
        page_limit=100,
    )

    report = installation.sync()

    assert report.outcome == "partial"
    assert report.orders is not None
    assert "no-such-file.csv" in report.orders["error"]
    assert report.requests[INVENTORY] == 1


def test_engine_dry_run_nets_orders_it_would_pull(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A dry run lists new kiosk orders and nets them, so its plan matches the real cycle."""
    installation = _installation(tmp_path, sandbox, 60)
    installation.sync()
    row = _stocked_row(read_export())
    frame = installation.store.find_frame(row["Item Code"])
    assert frame is not None
    installation.store.create_sales(1, frame_ids=[frame["id"]])

    plan = installation.sync(dry_run=True)
    delivered_by_plan = installation.delivered_orders()
    real = installation.sync()

    assert plan.orders == {"previewed": 1}
    assert plan.netted_units >= 1
    assert delivered_by_plan == {}
    assert plan.changed == real.changed == 0
    assert len(installation.delivered_orders()) == 1
