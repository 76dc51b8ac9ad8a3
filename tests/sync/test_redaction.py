"""Patient names and prescription values reach the sink's files and nothing else.

The test plants orders with recognisable invented values next to sales from the
sandbox's own generator (whose names it reads back through the API), pulls
them in process and through a CLI subprocess at DEBUG, and then searches logs,
reports, ``orders list --json`` and a dump of the state database.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from sync.sandbox.orders import OrderLine
from tests.sync.orders_harness import OrderInstallation

REPO = Path(__file__).resolve().parents[2]
PLANTED_NAME = "Quintessa Redactwell"
PLANTED_EMAIL = "quintessa.redactwell@example.com"
# Signed dioptres and millimetres above 59 cannot occur inside a timestamp or a duration.
PLANTED_RX: dict[str, Any] = {
    "od": {"sphere": "-17.25", "cylinder": "-5.75", "axis": 7, "add": "+3.25"},
    "os": {"sphere": "-16.75", "cylinder": "-4.25", "axis": 9, "add": "+3.25"},
    "pd": {"binocular": "69.9", "od": "61.1", "os": "62.2"},
    "segment_height": {"od": "63.3", "os": "64.4"},
}
# The add (+3.25) is left out: it reaches the sink as "3.25", which a timestamp can contain.
PLANTED_VALUES = ["-17.25", "-5.75", "-16.75", "-4.25", "69.9", "61.1", "62.2", "63.3", "64.4"]


def _plant_order(shop: OrderInstallation) -> str:
    frame = shop.store.get_frame("frm_00000001")
    assert frame is not None
    line = OrderLine(frame["id"], frame["sku"], frame["upc"], 1, 28899)
    order = shop.store.orders.add(
        [line], customer_name=PLANTED_NAME, customer_email=PLANTED_EMAIL, prescription=PLANTED_RX
    )
    return order.id


def _generated_patient_data(shop: OrderInstallation, order_ids: list[str]) -> list[str]:
    """Read the generator's invented names and emails back through the API."""
    found = []
    with shop.client() as client:
        for order_id in order_ids:
            customer = client.get_order(order_id).customer
            assert customer is not None
            assert customer.name
            assert customer.email
            found += [customer.name, customer.email]
    return found


def _dump_state(shop: OrderInstallation) -> str:
    connection = sqlite3.connect(shop.settings.state.dir / "state.db")
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def _sink_text(shop: OrderInstallation) -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in shop.order_files())


def test_redaction_patient_data_only_in_sink(
    tmp_path: Path,
    sandbox: SandboxServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Names, emails and Rx values appear in the sink's files and in no log, report or state."""
    shop = OrderInstallation.with_orders(tmp_path, sandbox)
    generated = shop.store.create_sales(3)
    planted = [_plant_order(shop)]
    monkeypatch.setattr(logging.getLogger("eyekiosk_sync"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="eyekiosk_sync")
    caplog.set_level(logging.DEBUG, logger="httpx")

    # In process at DEBUG, then a CLI subprocess at DEBUG for orders made after.
    report = shop.pull()
    later = shop.store.create_sales(2)
    planted.append(_plant_order(shop))
    pull = subprocess.run(
        [sys.executable, "-m", "sync.orders_cli", "--config", str(shop.config_path),
         "--log-level", "DEBUG", "pull", "--json"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    listing = subprocess.run(
        [sys.executable, "-m", "sync.orders_cli", "--config", str(shop.config_path),
         "--log-level", "DEBUG", "list", "--json"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip

    needles = [PLANTED_NAME, PLANTED_EMAIL, *PLANTED_VALUES]
    needles += _generated_patient_data(shop, generated + later)
    haystacks = {
        "caplog": caplog.text,
        "report": json.dumps(report.as_dict()),
        "cli pull stdout": pull.stdout,
        "cli pull stderr": pull.stderr,
        "orders list": listing.stdout + listing.stderr,
        "state database": _dump_state(shop),
    }
    sink = _sink_text(shop)
    assert pull.returncode == 0, pull.stderr
    assert listing.returncode == 0
    assert "DEBUG" in pull.stderr
    assert "partner_call" in caplog.text or "GET /api/v1/partner/orders" in caplog.text
    assert len(json.loads(listing.stdout)) == 7
    for needle in needles:
        assert needle in sink, f"{needle!r} missing from the sink's files"
    leaks = [(needle, where) for needle in needles for where, text in haystacks.items()
             if needle in text]  # fmt: skip
    assert leaks == []
