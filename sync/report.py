"""The run report: what one cycle read, changed and sent, for the CLI and the run history."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_LISTED_KEYS = 50


@dataclass(slots=True)
class SourceSummary:
    """Rows read from one source of the job."""

    name: str
    description: str
    rows: int
    rejected: int


@dataclass(slots=True)
class ItemRejection:
    """An update that Eyekiosk rejected."""

    frame_id: str
    key: str
    code: str
    message: str


@dataclass(slots=True)
class RunReport:
    """Everything one cycle did. ``as_dict`` gives the JSON form of ``sync --json``."""

    job: str
    run_id: int | None = None
    outcome: str = "running"
    dry_run: bool = False
    forced: bool = False
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    sources: list[SourceSummary] = field(default_factory=list)
    source_rows: int = 0
    rejected_rows: int = 0
    reject_file: str | None = None
    withheld_keys: int = 0
    mirror_full_rescan: bool = False
    mirror_fetched: int = 0
    mirror_size: int = 0
    unknown_keys: int = 0
    unknown_key_sample: list[str] = field(default_factory=list)
    ambiguous_keys: int = 0
    ambiguous_key_sample: list[str] = field(default_factory=list)
    changed: int = 0
    quantity_changes: int = 0
    price_changes: int = 0
    zeroed: int = 0
    zero_skipped: str | None = None
    batches: int = 0
    planned_batches: int = 0
    batches_failed: int = 0
    updates_accepted: int = 0
    updates_unchanged: int = 0
    updates_rejected: int = 0
    item_rejections: list[ItemRejection] = field(default_factory=list)
    recovered_batches: int = 0
    netted_frames: int = 0
    netted_units: int = 0
    netting: list[dict[str, Any]] = field(default_factory=list)
    orders: dict[str, Any] | None = None
    orders_failed: bool = False
    requests: dict[str, int] = field(default_factory=dict)
    plan: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def count_requests(self, before: Counter[str], after: Counter[str]) -> None:
        """Store the requests sent between two snapshots of the client's counter."""
        self.requests = dict(sorted((after - before).items()))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        """Return the counts kept in the run history: no samples, no plan."""
        data = self.as_dict()
        bulky_fields = (
            "plan",
            "item_rejections",
            "unknown_key_sample",
            "ambiguous_key_sample",
            "netting",
        )
        for bulky in bulky_fields:
            data.pop(bulky)
        return data


def format_report(report: RunReport) -> str:
    """Render a report as the few lines an operator reads after ``sync``."""
    mode = " (dry run)" if report.dry_run else ""
    lines = [f"job {report.job}: {report.outcome}{mode} in {report.duration_s:.2f} s"]
    lines += _source_lines(report)
    lines += _compare_lines(report)
    lines += _order_lines(report)
    lines += _detail_lines(report)
    return "\n".join(lines)


def _source_lines(report: RunReport) -> list[str]:
    lines = [
        f"  read      {report.source_rows} rows, {report.rejected_rows} rejected"
        + (f" (see {report.reject_file})" if report.reject_file else "")
    ]
    if len(report.sources) > 1:
        for source in report.sources:
            lines.append(
                f"    {source.name}: {source.rows} rows, {source.rejected} rejected "
                f"from {source.description}"
            )
    if report.withheld_keys:
        lines.append(
            f"  withheld  {plural(report.withheld_keys, 'key', 'keys')} that one source "
            "rejected, so no partial combination is sent"
        )
    return lines


def _compare_lines(report: RunReport) -> list[str]:
    lines = []
    # A cycle stopped by the guard or an error never reached the mirror and the diff.
    compared = bool(report.mirror_size or report.mirror_fetched)
    if compared:
        lines += [
            f"  mirror    {report.mirror_size} frames, {report.mirror_fetched} fetched"
            + (" (full rescan)" if report.mirror_full_rescan else ""),
            f"  compared  {report.changed} changed ({report.quantity_changes} quantity, "
            f"{report.price_changes} price), {report.unknown_keys} unknown keys, "
            f"{report.ambiguous_keys} ambiguous keys",
        ]
    if report.zero_skipped:
        lines.append(f"  kept      {report.zero_skipped}")
    if compared and report.dry_run:
        lines.append(
            f"  would send {plural(report.planned_batches, 'batch', 'batches')} "
            "(dry run: nothing was posted)"
        )
    if compared and not report.dry_run:
        inventory = sum(count for name, count in report.requests.items() if "/inventory" in name)
        lines.append(
            f"  sent      {plural(report.batches, 'batch', 'batches')} in "
            f"{plural(inventory, 'inventory request', 'inventory requests')}: "
            f"{report.updates_accepted} updated, {report.updates_unchanged} unchanged, "
            f"{report.updates_rejected} rejected, {report.batches_failed} batches failed"
        )
    return lines


def _order_lines(report: RunReport) -> list[str]:
    lines = []
    if report.netted_units:
        lines.append(
            f"  held back {plural(report.netted_units, 'unit', 'units')} on "
            f"{plural(report.netted_frames, 'frame', 'frames')} sold at the kiosk that the "
            "source does not count yet"
        )
    if report.orders is None:
        return lines
    orders = report.orders
    if "error" in orders and len(orders) == 1:
        lines.append(f"  orders    failed: {orders['error']}")
    elif "previewed" in orders:
        lines.append(
            f"  orders    {plural(orders['previewed'], 'new order', 'new orders')} listed "
            "and netted, not delivered (dry run)"
        )
    else:
        lines.append(
            f"  orders    {orders.get('pulled', 0)} pulled, {orders.get('delivered', 0)} "
            f"delivered, {orders.get('duplicates_skipped', 0)} already delivered, "
            f"{orders.get('failed', 0)} failed; status updates "
            f"{orders.get('status_updates_sent', 0)} sent, "
            f"{orders.get('status_updates_rejected', 0)} rejected"
        )
    return lines


def _detail_lines(report: RunReport) -> list[str]:
    lines = []
    if report.recovered_batches:
        lines.append(
            f"  recovered {report.recovered_batches} unconfirmed batches of an earlier run"
        )
    for rejection in report.item_rejections[:10]:
        lines.append(
            f"  rejected  {rejection.key} ({rejection.frame_id}): "
            f"{rejection.code} {rejection.message}"
        )
    if report.unknown_key_sample and not report.dry_run:
        lines.append("  unknown   " + ", ".join(report.unknown_key_sample[:10]))
    if report.error:
        lines.append(f"  error     {report.error}")
    return lines


def plural(count: int, one: str, many: str) -> str:
    """Return "1 batch" or "3 batches"."""
    return f"{count} {one if count == 1 else many}"


__all__ = ["ItemRejection", "RunReport", "SourceSummary", "format_report", "plural"]
