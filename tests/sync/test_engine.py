"""End-to-end cycles: CSV export -> mirror -> diff -> inventory batches, over real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.errors import MissingScopeError
from sync.models import format_timestamp
from sync.report import format_report
from sync.runtime import open_client
from sync.sandbox import SandboxServer
from tests.sync.harness import US_EXPORT, Installation, read_export

INVENTORY = "POST /api/v1/partner/inventory"
FRAMES = "GET /api/v1/partner/frames"


@pytest.fixture
def installation(tmp_path: Path, sandbox: SandboxServer) -> Installation:
    return Installation.create(tmp_path, sandbox)


def _sandbox_quantities(sandbox: SandboxServer, skus: list[str]) -> dict[str, int]:
    assert sandbox.store is not None
    found = {}
    for sku in skus:
        frame = sandbox.store.find_frame(sku)
        assert frame is not None, sku
        found[sku] = frame["quantity"]
    return found


def test_engine_first_cycle_sends_exactly_the_changes(installation: Installation) -> None:
    """The seeded 5% of changes go out in ceil(changed/100) requests; the next cycle sends none."""
    first = installation.sync()
    second = installation.sync()

    assert first.outcome == "success"
    assert first.changed == 25
    assert first.requests[INVENTORY] == 1
    assert first.updates_accepted == 25
    assert second.changed == 0
    assert INVENTORY not in second.requests
    rows = read_export()
    expected = {row["Item Code"]: int(row["On Hand"]) for row in rows}
    assert _sandbox_quantities(installation.sandbox, list(expected)) == expected


def test_engine_101_changes_sent_as_two_requests(installation: Installation) -> None:
    """101 changed quantities become one batch of 100 and one of 1."""
    installation.sync()
    rows = read_export()
    for row in rows[:101]:
        row["On Hand"] = str(int(row["On Hand"]) + 7)
    installation.write_rows(rows)
    assert installation.sandbox.store is not None
    before = len(installation.sandbox.store.inventory_batches())

    report = installation.sync()

    batches = installation.sandbox.store.inventory_batches()[before:]
    assert report.changed == 101
    assert report.requests[INVENTORY] == 2
    assert sorted(len(batch["updates"]) for batch in batches) == [1, 100]


def test_engine_dry_run_posts_nothing(installation: Installation) -> None:
    """A dry run reports the plan with from/to values and sends no inventory request."""
    report = installation.sync(dry_run=True)

    assert report.changed == 25
    assert INVENTORY not in report.requests
    assert len(report.plan) == 25
    assert all("quantity" in entry or "price" in entry for entry in report.plan)
    assert installation.sync().changed == 25


def test_engine_item_rejections_reported(installation: Installation) -> None:
    """An update Eyekiosk rejects is listed with its key and code, and the rest go through."""
    installation.sync()
    rows = read_export()
    rows[0]["On Hand"] = "250000"
    rows[1]["On Hand"] = str(int(rows[1]["On Hand"]) + 1)
    installation.write_rows(rows)

    report = installation.sync()

    assert report.outcome == "partial"
    assert report.updates_accepted == 1
    assert report.updates_rejected == 1
    rejection = report.item_rejections[0]
    assert rejection.key == rows[0]["Item Code"]
    assert rejection.code == "invalid_quantity"


def test_engine_unknown_keys_reported_not_posted(installation: Installation) -> None:
    """Source keys that Eyekiosk does not have are counted and never posted."""
    installation.sync()
    rows = read_export()
    rows.append(dict(rows[0], **{"Item Code": "NOT-IN-EYEKIOSK", "UPC": ""}))
    installation.write_rows(rows)

    report = installation.sync()

    assert report.unknown_keys == 1
    assert report.unknown_key_sample == ["NOT-IN-EYEKIOSK"]
    assert INVENTORY not in report.requests


@pytest.mark.parametrize(
    ("keep_rows", "force", "outcome"),
    [
        (0, False, "aborted"),
        (200, False, "aborted"),
        (300, False, "success"),
        (200, True, "success"),
    ],
    ids=["empty", "truncated-60pc", "dropped-40pc", "truncated-forced"],
)
def test_engine_source_guard(
    installation: Installation, keep_rows: int, force: bool, outcome: str
) -> None:
    """An empty source, or one that lost over half its rows, posts nothing unless forced."""
    installation.sync()
    rows = read_export()
    rows[0]["On Hand"] = str(int(rows[0]["On Hand"]) + 1)
    installation.write_rows(rows[:keep_rows])

    report = installation.sync(force=force)

    assert report.outcome == outcome
    if outcome == "aborted":
        assert INVENTORY not in report.requests
        assert FRAMES not in report.requests
        assert "nothing was posted" in (report.error or "")


@pytest.mark.parametrize(
    ("overlap_s", "seen"), [(2.0, True), (0.0, False)], ids=["overlap", "no-overlap"]
)
def test_engine_updated_since_overlap(
    tmp_path: Path, sandbox: SandboxServer, overlap_s: float, seen: bool
) -> None:
    """A frame stamped earlier in the watermark's second is read again only with an overlap."""
    installation = Installation.create(
        tmp_path, sandbox, mirror_options=f"overlap_s = {overlap_s}\nfull_rescan_every = 0"
    )
    installation.sync()
    rows = read_export()
    first, second = rows[0]["Item Code"], rows[1]["Item Code"]
    assert sandbox.store is not None
    frame_a = sandbox.store.find_frame(first)
    frame_b = sandbox.store.find_frame(second)
    assert frame_a is not None and frame_b is not None
    second_start = (datetime.now(UTC) + timedelta(seconds=30)).replace(microsecond=0)

    # A changes late in a second and is read; B's change in that same second shows up afterwards.
    sandbox.store.set_frame(
        frame_a["id"], updated_at=format_timestamp(second_start + timedelta(microseconds=900_000))
    )
    installation.sync()
    sandbox.store.set_frame(
        frame_b["id"],
        quantity=frame_b["quantity"] + 5,
        updated_at=format_timestamp(second_start + timedelta(microseconds=200_000)),
    )
    report = installation.sync()

    assert (report.changed == 1) is seen
    assert _sandbox_quantities(sandbox, [second])[second] == (
        int(rows[1]["On Hand"]) if seen else frame_b["quantity"] + 5
    )


def test_engine_missing_scope_named(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A grant without inventory:write fails before any call, naming the scope."""
    installation = Installation.create(tmp_path, sandbox, scopes=("frames:read",))

    with pytest.raises(MissingScopeError, match="inventory:write"):
        open_client(installation.settings)


def test_engine_rate_limit_and_server_errors_retried(installation: Installation) -> None:
    """A 429 with Retry-After and a 503 on the inventory call are retried and the cycle succeeds."""
    assert installation.sandbox.store is not None
    installation.sandbox.store.inject_fault(
        "rate_limit", 1, retry_after=1, paths=["/api/v1/partner/inventory"]
    )
    installation.sandbox.store.inject_fault(
        "server_error", 1, status=503, paths=["/api/v1/partner/inventory"]
    )

    report = installation.sync()

    assert report.outcome == "success"
    assert report.requests[INVENTORY] == 3
    assert report.updates_accepted == 25


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_engine_crash_mid_post_converges(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A cycle killed after its first batch leaves state from which the next cycle converges.

    No accepted update is applied twice and every change reaches Eyekiosk.
    """
    installation = Installation.create(tmp_path, sandbox, partner_options="concurrency = 1")
    installation.sync()
    rows = read_export()
    for row in rows[:250]:
        row["On Hand"] = str(int(row["On Hand"]) + 3)
    installation.write_rows(rows)
    store = sandbox.store
    assert store is not None
    before = len(store.inventory_batches())
    store.inject_fault("latency", 3, latency_ms=3000, paths=["/api/v1/partner/inventory"])

    process = subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "--config", str(installation.config_path), "sync"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_until(lambda: len(store.inventory_batches()) > before, timeout=30)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    store.clear_faults()
    applied_before_crash = len(store.inventory_batches()) - before

    report = installation.sync()

    batches = store.inventory_batches()[before:]
    applied = Counter(
        update["frame_id"]
        for batch in batches
        for update, result in zip(batch["updates"], batch["results"], strict=True)
        if result["status"] == "updated"
    )
    expected = {row["Item Code"]: int(row["On Hand"]) for row in rows}
    assert 1 <= applied_before_crash < 3
    assert report.recovered_batches >= 1
    assert report.outcome == "success"
    assert sum(applied.values()) == 250
    assert max(applied.values()) == 1
    assert _sandbox_quantities(sandbox, list(expected)) == expected
    assert installation.sync().changed == 0


def test_engine_rejected_rows_reported_and_written(installation: Installation) -> None:
    """Unreadable rows are counted and written with line and reason; the valid rows still sync."""
    rows = read_export()
    rows[2]["On Hand"] = "abc"
    rows[4]["On Hand"] = "-1"
    rows[6]["Item Code"] = ""
    installation.write_rows(rows)

    report = installation.sync()

    assert report.outcome == "success"
    assert report.rejected_rows == 3
    assert report.source_rows == 497
    assert report.reject_file is not None
    lines = Path(report.reject_file).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "source,location,key,reason"
    assert lines[1].startswith("source1,stock.csv:4,")
    assert "abc" in lines[1]
    assert lines[2].startswith("source1,stock.csv:6,")
    assert lines[3].startswith("source1,stock.csv:8,")
    assert report.sources[0].rejected == 3


def test_engine_missing_zero_skipped_when_rows_rejected(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """With missing = "zero", a rejected row's frame is not mistaken for a vanished one."""
    installation = Installation.create(tmp_path, sandbox, job_options='missing = "zero"')
    installation.sync()
    rows = read_export()
    rows[0]["On Hand"] = "1e3"
    installation.write_rows(rows)

    report = installation.sync()

    assert report.zeroed == 0
    assert report.zero_skipped is not None
    assert INVENTORY not in report.requests
    sku = rows[0]["Item Code"]
    assert _sandbox_quantities(installation.sandbox, [sku])[sku] != 0


@pytest.mark.parametrize(
    ("dropped", "outcome"), [(40, "success"), (80, "aborted")], ids=["8pc", "16pc"]
)
def test_engine_missing_zero_share_guard(
    tmp_path: Path, sandbox: SandboxServer, dropped: int, outcome: str
) -> None:
    """Zeroing more than max_zero_share (10%) of the frames aborts the cycle."""
    installation = Installation.create(tmp_path, sandbox, job_options='missing = "zero"')
    installation.sync()
    installation.write_rows(read_export()[dropped:])

    report = installation.sync()

    assert report.outcome == outcome
    stocked = sum(1 for row in read_export()[:dropped] if row["On Hand"] != "0")
    if outcome == "success":
        assert report.zeroed == stocked
    else:
        assert stocked > 50
        assert "max_zero_share" in (report.error or "")
        assert INVENTORY not in report.requests


def test_engine_sku_case_applies_to_both_sides(tmp_path: Path, sandbox: SandboxServer) -> None:
    """With sku_case = "lower", lower-case export keys still match Eyekiosk's SKUs."""
    installation = Installation.create(tmp_path, sandbox, job_options='sku_case = "lower"')
    rows = read_export()
    for row in rows:
        row["Item Code"] = row["Item Code"].lower()
    installation.write_rows(rows)

    report = installation.sync()

    assert report.unknown_keys == 0
    assert report.changed == 25


def test_engine_two_sources_combined(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Own stock plus supplier stock, capped, and the first source's price win per key."""
    installation = Installation.create(
        tmp_path, sandbox, job_options='combine = { quantity = "sum", max_quantity = 6 }'
    )
    installation.sync()
    rows = read_export()
    supplier = tmp_path / "supplier.csv"
    supplier.write_text(
        f"sku,available,price\n{rows[0]['Item Code']},3,1.00\n{rows[1]['Item Code']},50,\n",
        encoding="utf-8",
    )
    installation.append_config(
        """
[[jobs.sources]]
name = "supplier"
adapter = "csv"
path = "supplier.csv"
columns = { key = "sku", quantity = "available", price = "price" }
"""
    )

    report = installation.sync()

    first, second = rows[0]["Item Code"], rows[1]["Item Code"]
    quantities = _sandbox_quantities(installation.sandbox, [first, second])
    assert [source.rows for source in report.sources] == [500, 2]
    assert [source.name for source in report.sources] == ["source1", "supplier"]
    summary = format_report(report)
    assert "    source1: 500 rows, 0 rejected from csv file" in summary
    assert "    supplier: 2 rows, 0 rejected from csv file" in summary
    assert quantities[first] == min(int(rows[0]["On Hand"]) + 3, 6)
    assert quantities[second] == 6
    assert installation.sandbox.store is not None
    frame = installation.sandbox.store.find_frame(first)
    assert frame is not None
    assert frame["price"] == rows[0]["Retail Price"]


def test_engine_guard_per_source(tmp_path: Path, sandbox: SandboxServer) -> None:
    """An empty second source aborts the cycle although the combined rows barely drop."""
    installation = Installation.create(tmp_path, sandbox)
    supplier = tmp_path / "supplier.csv"
    supplier.write_text("sku,available\nFR-00001,3\n", encoding="utf-8")
    installation.append_config(
        """
[[jobs.sources]]
name = "supplier"
adapter = "csv"
path = "supplier.csv"
columns = { key = "sku", quantity = "available" }
"""
    )
    installation.sync()
    supplier.write_text("sku,available\n", encoding="utf-8")

    report = installation.sync()

    assert report.outcome == "aborted"
    assert "source supplier has no valid rows" in (report.error or "")


def _composite_job(installation: Installation, columns: str, extra: str = "") -> None:
    text = installation.config_path.read_text(encoding="utf-8")
    head, _, _ = text.partition("[[jobs.sources]]")
    installation.config_path.write_text(
        head.replace('name = "shop"', 'name = "shop"\nmatch_on = "composite"')
        + f"""[[jobs.sources]]
adapter = "csv"
path = "stock.csv"
key_type = "composite"
{extra}
columns = {columns}
""",
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    ("export", "columns", "extra"),
    [
        (
            "stock_export_us.csv",
            '{ key = ["Brand", "Model", "Color Code", "Eye"], quantity = "On Hand" }',
            "",
        ),
        (
            "stock_export_de.csv",
            '{ key = ["Marke", "Modell", "Farbcode", "Größe"], quantity = "Bestand" }',
            'encoding = "cp1252"\ndelimiter = ";"\ndecimal = ","',
        ),
    ],
    ids=["us", "de"],
)
def test_engine_composite_key_matches_without_barcodes(
    tmp_path: Path, sandbox: SandboxServer, export: str, columns: str, extra: str
) -> None:
    """Brand, model, colour code and eye size match frames; shared keys are listed, not posted."""
    installation = Installation.create(tmp_path, sandbox)
    (tmp_path / "stock.csv").write_bytes((US_EXPORT.parent / export).read_bytes())
    _composite_job(installation, columns, extra)

    rows = read_export()
    differing = sum(
        1 for row in rows if _quantity_of(installation, row["Item Code"]) != int(row["On Hand"])
    )

    plan = installation.sync(dry_run=True)
    report = installation.sync()

    assert differing > 0
    assert plan.unknown_keys == 0
    assert report.unknown_keys == 0
    assert plan.changed == differing
    assert report.changed == differing
    ambiguous = set(plan.ambiguous_key_sample)
    unique_quantity_changes = [
        row
        for row in rows
        if _composite(row) not in ambiguous
        and installation.sandbox.store is not None
        and _quantity_of(installation, row["Item Code"]) != int(row["On Hand"])
    ]
    assert unique_quantity_changes == []
    assert report.requests.get(INVENTORY, 0) >= 1


def _composite(row: dict[str, str]) -> str:
    from sync.keys import composite_key

    key = composite_key(row["Brand"], row["Model"], row["Color Code"], row["Eye"])
    assert key is not None
    return key


def _quantity_of(installation: Installation, sku: str) -> int:
    assert installation.sandbox.store is not None
    frame = installation.sandbox.store.find_frame(sku)
    assert frame is not None
    return int(frame["quantity"])


def test_engine_combine_withholds_key_rejected_in_one_source(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A key one source rejected is not posted from the other sources' partial sum."""
    installation = Installation.create(tmp_path, sandbox)
    rows = read_export()
    sku = rows[0]["Item Code"]
    supplier = tmp_path / "supplier.csv"
    supplier.write_text(f"sku,available\n{sku},5\n", encoding="utf-8")
    installation.append_config(
        """
[[jobs.sources]]
name = "supplier"
adapter = "csv"
path = "supplier.csv"
columns = { key = "sku", quantity = "available" }
"""
    )
    installation.sync()
    synced = _quantity_of(installation, sku)
    supplier.write_text(f"sku,available\n{sku},lots\nFR-99999,1\n", encoding="utf-8")

    report = installation.sync()

    assert synced == int(rows[0]["On Hand"]) + 5
    assert report.withheld_keys == 1
    assert report.rejected_rows == 1
    assert _quantity_of(installation, sku) == synced


def test_engine_sources_combine_after_key_normalisation(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """Two spellings of one SKU in two sources add up instead of cancelling each other out."""
    installation = Installation.create(
        tmp_path, sandbox, job_options='sku_case = "upper"\nmissing = "zero"'
    )
    rows = read_export()
    sku = rows[0]["Item Code"]
    supplier = tmp_path / "supplier.csv"
    supplier.write_text(f"sku,available\n{sku.lower()},3\n", encoding="utf-8")
    installation.append_config(
        """
[[jobs.sources]]
name = "supplier"
adapter = "csv"
path = "supplier.csv"
columns = { key = "sku", quantity = "available" }
"""
    )

    report = installation.sync()

    assert report.zeroed == 0
    assert _quantity_of(installation, sku) == int(rows[0]["On Hand"]) + 3


def test_engine_upc_forms_in_one_source_conflict_rejected(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """UPC-A and EAN-13 rows of one frame with different stock are rejected, not both dropped."""
    installation = Installation.create(tmp_path, sandbox, job_options='match_on = "upc"')
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace('key = "Item Code"', 'key = "UPC"'), encoding="utf-8"
    )
    rows = read_export()
    installation.sync()
    upc = rows[0]["UPC"]
    rows.append(dict(rows[0], UPC="0" + upc, **{"On Hand": str(int(rows[0]["On Hand"]) + 4)}))
    installation.write_rows(rows)

    report = installation.sync()

    assert report.rejected_rows == 1
    assert report.reject_file is not None
    assert "several rows have the key" in Path(report.reject_file).read_text(encoding="utf-8")
    assert INVENTORY not in report.requests
