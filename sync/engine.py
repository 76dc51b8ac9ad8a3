"""One sync cycle: read stock, refresh the mirror, diff, post the changes, record the run.

Crash safety comes from the order of writes. Batches are journalled as
``planned`` before anything is sent and marked ``posted`` just before sending.
Each carries an idempotency key, so a retry inside a cycle is never applied
twice. A cycle that dies leaves ``planned`` or ``posted`` batches behind. The
next cycle marks them ``superseded`` after refreshing the mirror. Every frame
that a lost batch did change has a newer ``updated_at`` than the watermark, so
the refresh reads it back. The new diff then sends only what is still missing.
Nothing accepted is sent again and no change is lost.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from adapters.base import KEY, PRICE_CENTS, QUANTITY
from sync.client import PartnerClient
from sync.config import JobSettings, Settings
from sync.diff import (
    FRAME_ID,
    MIRROR_KEY_COLUMN,
    OLD_PRICE_CENTS,
    OLD_QUANTITY,
    compute_changes,
)
from sync.errors import (
    ConfigError,
    PartnerAPIError,
    SinkError,
    SourceError,
    SourceGuardError,
    StateError,
    SyncError,
)
from sync.mirror import refresh_mirror
from sync.models import MAX_INVENTORY_BATCH, InventoryResponse, InventoryUpdate
from sync.netting import netting_candidates, unsettled_sales
from sync.orders import open_sink, preview_orders, sync_orders
from sync.report import ItemRejection, RunReport
from sync.sources import (
    check_guard,
    convert_case,
    read_job_sources,
    remember_good_sources,
    source_context,
)
from sync.state import (
    BATCH_FAILED,
    BATCH_POSTED,
    BATCH_SUPERSEDED,
    StateStore,
)

log = logging.getLogger("eyekiosk_sync.engine")

CYCLES = "cycles"
PLAN_LIMIT = 1000
SAMPLE_LIMIT = 50
MAX_SAMPLE_KEY = 80

# One mirror per state database: jobs that run at the same time refresh it in turn.
_MIRROR_LOCK = threading.Lock()


class JobLockedError(SyncError):
    """Another process or thread is running the same job."""


class SyncEngine:
    """Runs cycles of the configured jobs against one client and one state store."""

    def __init__(self, settings: Settings, *, client: PartnerClient, store: StateStore) -> None:
        self.settings = settings
        self.client = client
        self.store = store
        # Set by the daemon on SIGTERM: the cycle stops after the batches in flight.
        self.stop_event = threading.Event()

    def run_job(self, job: JobSettings, *, dry_run: bool = False, force: bool = False) -> RunReport:
        """Run one cycle of ``job`` and return its report.

        The report's outcome is ``success``, ``partial`` (some batches failed or
        some updates were rejected), ``aborted`` (the source guard stopped the
        cycle) or ``failed``. Errors are logged and recorded in the run history,
        not raised, so a scheduler keeps going.

        Raises:
            JobLockedError: when the job is already running.
        """
        report = RunReport(job=job.name, dry_run=dry_run, forced=force)
        started = time.monotonic()
        report.started_at = _now_text()

        with _job_lock(self.settings.state.dir, job.name):
            self.store.mark_interrupted_runs(job.name)
            report.run_id = self.store.start_run(job.name, dry_run=dry_run)
            before = Counter(self.client.request_counts)
            log.info("cycle.started job=%s run=%s dry_run=%s", job.name, report.run_id, dry_run)
            try:
                self._cycle(job, report, dry_run=dry_run, force=force)
            except ConfigError as error:
                # Recorded, then raised: the operator has to fix the file, not wait.
                report.outcome, report.error = "failed", str(error)
                log.error("cycle.failed job=%s error=%s", job.name, error)
                raise
            except SourceGuardError as error:
                report.outcome, report.error = "aborted", str(error)
                log.error("cycle.aborted job=%s reason=%s", job.name, error)
            except SyncError as error:
                report.outcome, report.error = "failed", str(error)
                log.error("cycle.failed job=%s error=%s", job.name, error)
            except Exception as error:
                report.outcome, report.error = "failed", f"unexpected error: {error!r}"
                log.exception("cycle.crashed job=%s", job.name)
            finally:
                report.count_requests(before, Counter(self.client.request_counts))
                report.duration_s = round(time.monotonic() - started, 3)
                report.finished_at = _now_text()
                self.store.finish_run(
                    report.run_id,
                    outcome=report.outcome,
                    counts=report.counts(),
                    error=report.error,
                )
        log.info(
            "cycle.finished job=%s run=%s outcome=%s changed=%d batches=%d duration_s=%.2f",
            job.name,
            report.run_id,
            report.outcome,
            report.changed,
            report.batches,
            report.duration_s,
        )
        return report

    # The cycle, step by step

    def _cycle(self, job: JobSettings, report: RunReport, *, dry_run: bool, force: bool) -> None:
        # Read and guard the sources before any call to Eyekiosk.
        sources = read_job_sources(self.settings, job, report)
        check_guard(self.store, job, sources, force=force)

        # Refresh the mirror, then retire batches that an earlier cycle left open.
        open_batches = self.store.open_batches(job.name)
        with _MIRROR_LOCK:
            cycles = int(self.store.get_bookmark(job.name, CYCLES) or 0)
            every = self.settings.mirror.full_rescan_every
            refresh = refresh_mirror(
                self.client,
                self.store,
                overlap_s=self.settings.mirror.overlap_s,
                full=every > 0 and cycles % every == 0,
            )
            mirror = self.store.load_mirror(MIRROR_KEY_COLUMN[job.match_on])
        report.mirror_full_rescan = refresh.full
        report.mirror_fetched = refresh.fetched
        report.mirror_size = len(mirror)
        for batch in open_batches:
            self.store.set_batch_status(batch.idempotency_key, BATCH_SUPERSEDED)
        report.recovered_batches = len(open_batches)
        if open_batches:
            log.warning(
                "cycle.recovered job=%s batches=%d from an interrupted run; frames re-read",
                job.name,
                len(open_batches),
            )

        # Pull kiosk orders first, so this push already holds back what they sold.
        netted = self._orders(job, report, dry_run=dry_run)

        # Compare.
        changes = self._compare(job, sources.rows, mirror, report, netted=netted, force=force)

        if dry_run:
            report.plan = _plan_rows(changes)
            report.planned_batches = math.ceil(len(changes) / MAX_INVENTORY_BATCH)
            report.outcome = "success"
        else:
            self._post(job, report, changes)

        # Remember what good sources looked like, for the truncation guard.
        if report.outcome in ("success", "partial"):
            remember_good_sources(self.store, job, sources)
            self.store.set_bookmark(job.name, CYCLES, str(cycles + 1))

    def _compare(
        self,
        job: JobSettings,
        rows: pd.DataFrame,
        mirror: pd.DataFrame,
        report: RunReport,
        *,
        netted: pd.Series | None,
        force: bool,
    ) -> pd.DataFrame:
        missing = job.missing
        if missing == "zero" and report.rejected_rows:
            # A rejected row's frame would look absent from the source and be zeroed.
            missing = "ignore"
            report.zero_skipped = (
                f"{report.rejected_rows} rows were rejected, so no frame is set to 0 this cycle"
            )
            log.warning("diff.zero_skipped job=%s rejected=%d", job.name, report.rejected_rows)

        mirror = _mirror_keys(mirror, job)
        diff = compute_changes(
            rows,
            mirror,
            match_on=job.match_on,
            missing=missing,
            update_price=job.update_price,
            netted=netted,
        )
        report.netted_frames = diff.netted_frames
        report.netted_units = diff.netted_units
        report.netting = diff.netting[:SAMPLE_LIMIT]
        if diff.netted_units:
            log.info(
                "netting.applied job=%s frames=%d units=%d",
                job.name,
                diff.netted_frames,
                diff.netted_units,
            )
        changes = diff.changes
        report.changed = len(changes)
        report.quantity_changes = int(changes[QUANTITY].notna().sum())
        report.price_changes = int(changes[PRICE_CENTS].notna().sum())
        report.zeroed = diff.zeroed
        report.unknown_keys = len(diff.unknown_keys)
        # A dry run lists every key that needs attention before anything is posted.
        listed = PLAN_LIMIT if report.dry_run else SAMPLE_LIMIT
        report.unknown_key_sample = _sample(diff.unknown_keys, listed)
        report.ambiguous_keys = len(diff.ambiguous_keys)
        report.ambiguous_key_sample = _sample(diff.ambiguous_keys, listed)
        if diff.unknown_keys:
            log.warning("diff.unknown_keys job=%s count=%d", job.name, len(diff.unknown_keys))
        if diff.ambiguous_keys:
            log.warning("diff.ambiguous_keys job=%s count=%d", job.name, len(diff.ambiguous_keys))

        limit = job.max_zero_share * len(mirror)
        if diff.zeroed > limit:
            problem = (
                f'the source lacks {diff.zeroed} of {len(mirror)} frames, and missing = "zero" '
                f"would set them to 0 (more than max_zero_share {job.max_zero_share:.0%})"
            )
            if not force:
                raise SourceGuardError(
                    f"{problem}; nothing was posted. Check the export, or run "
                    f"`eyekiosk-sync sync --job {job.name} --force` if it is right",
                    source=job.name,
                )
            log.warning("guard.overridden job=%s reason=%s", job.name, problem)
        return changes

    def _orders(self, job: JobSettings, report: RunReport, *, dry_run: bool) -> pd.Series | None:
        """Pull the job's orders into its sink; return the kiosk units to hold back.

        A failed pull (Eyekiosk, the sink, the status source or the state
        database) is recorded and makes the run partial, but the inventory
        push goes on, netting the orders the state database already holds. A
        sink that cannot report which orders are booked falls back to the settle
        window. A dry run pulls nothing, because delivering to the sink is a
        side effect. Invalid sink options still stop the cycle.
        """
        if job.orders is None:
            return None
        context = source_context(self.settings, job)
        previewed = pd.Series(dtype="Int64")
        if dry_run:
            previewed = self._preview_orders(job, report)
        else:
            try:
                pulled = sync_orders(job, client=self.client, store=self.store, context=context)
            except (PartnerAPIError, SinkError, SourceError, StateError) as error:
                report.orders = {"error": str(error)}
                report.orders_failed = True
                log.error("orders.failed job=%s error=%s", job.name, error)
            else:
                report.orders = pulled.as_dict()
                report.orders_failed = not pulled.ok

        now = datetime.now(UTC)
        sink = open_sink(job.orders.sink, job=job.name, context=context)
        try:
            booked = sink.booked_orders(netting_candidates(self.store, job.name, now=now))
        except (SinkError, SourceError) as error:
            log.warning(
                "netting.booked_unknown job=%s error=%s; using the settle window", job.name, error
            )
            booked = None
        finally:
            sink.close()
        netted = unsettled_sales(
            self.store,
            job.name,
            now=now,
            settle_minutes=job.orders.settle_minutes,
            booked=booked,
        )
        if previewed.empty:
            return netted
        return netted.add(previewed, fill_value=0).astype("Int64")

    def _preview_orders(self, job: JobSettings, report: RunReport) -> pd.Series:
        """List the orders a real cycle would pull first; return their units per frame."""
        try:
            orders = preview_orders(job, client=self.client, store=self.store)
        except PartnerAPIError as error:
            report.orders = {"error": str(error)}
            report.orders_failed = True
            log.error("orders.preview_failed job=%s error=%s", job.name, error)
            return pd.Series(dtype="Int64")
        report.orders = {"previewed": len(orders)}
        units: dict[str, int] = {}
        for order in orders:
            if order.status == "cancelled":
                continue
            for item in order.items:
                units[item.frame_id] = units.get(item.frame_id, 0) + item.quantity
        series = pd.Series(units, dtype="Int64")
        series.index = series.index.astype("string")
        return series

    def _post(self, job: JobSettings, report: RunReport, changes: pd.DataFrame) -> None:
        batches = _build_batches(changes, job=job.name, run_id=report.run_id or 0)
        report.batches = len(batches)
        if not batches:
            report.outcome = "partial" if report.orders_failed else "success"
            return
        self.store.plan_batches(
            report.run_id or 0,
            job.name,
            [
                (key, [update.model_dump(mode="json", exclude_none=True) for update in updates])
                for key, updates in batches
            ],
        )
        keys_by_frame = dict(zip(changes[FRAME_ID], changes[KEY], strict=True))
        updates_by_key = dict(batches)
        lock = threading.Lock()

        def on_result(key: str, outcome: InventoryResponse | PartnerAPIError) -> None:
            with lock:
                self._record_batch(report, key, updates_by_key[key], outcome, keys_by_frame)

        # Send as many batches at a time as the client runs at once, so a stop
        # request waits only for the batches in flight.
        group_size = max(1, self.settings.partner.concurrency)
        for start in range(0, len(batches), group_size):
            if self.stop_event.is_set():
                unsent = len(batches) - start
                log.warning("cycle.stopped job=%s unsent_batches=%d", job.name, unsent)
                report.outcome, report.error = "stopped", f"stopped with {unsent} batches unsent"
                return
            group = batches[start : start + group_size]
            self.store.set_batches_status([key for key, _updates in group], BATCH_POSTED)
            self.client.post_inventory_batches(group, on_result=on_result)

        failed = report.batches_failed or report.updates_rejected or report.orders_failed
        report.outcome = "partial" if failed else "success"

    def _record_batch(
        self,
        report: RunReport,
        key: str,
        updates: list[InventoryUpdate],
        outcome: InventoryResponse | PartnerAPIError,
        keys_by_frame: dict[str, str],
    ) -> None:
        if isinstance(outcome, PartnerAPIError):
            report.batches_failed += 1
            self.store.set_batch_status(key, BATCH_FAILED, {"error": str(outcome)})
            log.error("batch.failed key=%s error=%s", key, outcome)
            return

        sent = {update.frame_id: update for update in updates}
        accepted = []
        for result in outcome.results:
            if result.status == "rejected":
                report.updates_rejected += 1
                error = result.error
                report.item_rejections.append(
                    ItemRejection(
                        frame_id=result.frame_id,
                        key=keys_by_frame.get(result.frame_id, ""),
                        code=error.code if error else "rejected",
                        message=error.message if error else "",
                    )
                )
                continue
            if result.status == "updated":
                report.updates_accepted += 1
            else:
                report.updates_unchanged += 1
            update = sent.get(result.frame_id)
            if update is not None:
                accepted.append(
                    (
                        result.frame_id,
                        update.quantity,
                        None if update.price is None else int(update.price * 100),
                        result.updated_at or datetime.now(UTC),
                    )
                )
        self.store.confirm_batch(
            key,
            accepted,
            {
                "updated": outcome.updated,
                "rejected": outcome.rejected,
                "items": len(outcome.results),
            },
        )
        if outcome.rejected:
            log.warning("batch.items_rejected key=%s rejected=%d", key, outcome.rejected)


def _mirror_keys(mirror: pd.DataFrame, job: JobSettings) -> pd.DataFrame:
    """Bring the mirror's SKUs into the case the job's source keys were given."""
    if job.match_on == "sku" and job.sku_case != "keep":
        return mirror.assign(sku=convert_case(mirror["sku"], job.sku_case))
    return mirror


def _sample(keys: list[str], limit: int) -> list[str]:
    return [
        key if len(key) <= MAX_SAMPLE_KEY else key[:MAX_SAMPLE_KEY] + "…" for key in keys[:limit]
    ]


def _build_batches(
    changes: pd.DataFrame, *, job: str, run_id: int
) -> list[tuple[str, list[InventoryUpdate]]]:
    updates = [
        InventoryUpdate(
            frame_id=str(frame_id),
            quantity=None if pd.isna(quantity) else int(quantity),
            price=None if pd.isna(price) else Decimal(int(price)) / 100,
        )
        for frame_id, quantity, price in zip(
            changes[FRAME_ID], changes[QUANTITY], changes[PRICE_CENTS], strict=True
        )
    ]
    batches = []
    for number, start in enumerate(range(0, len(updates), MAX_INVENTORY_BATCH), start=1):
        key = f"{job}-r{run_id}-b{number}-{os.urandom(4).hex()}"
        batches.append((key, updates[start : start + MAX_INVENTORY_BATCH]))
    return batches


def _plan_rows(changes: pd.DataFrame) -> list[dict[str, Any]]:
    plan = []
    for row in changes.head(PLAN_LIMIT).itertuples(index=False):
        entry: dict[str, Any] = {"frame_id": getattr(row, FRAME_ID), "key": getattr(row, KEY)}
        quantity, price = getattr(row, QUANTITY), getattr(row, PRICE_CENTS)
        if not pd.isna(quantity):
            entry["quantity"] = {
                "from": _int_or_none(getattr(row, OLD_QUANTITY)),
                "to": int(quantity),
            }
        if not pd.isna(price):
            entry["price"] = {
                "from": _cents_text(getattr(row, OLD_PRICE_CENTS)),
                "to": _cents_text(price),
            }
        plan.append(entry)
    return plan


def _int_or_none(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


def _cents_text(value: Any) -> str | None:
    return None if pd.isna(value) else f"{int(value) / 100:.2f}"


@contextmanager
def _job_lock(state_dir: Path, job: str) -> Iterator[None]:
    """Hold an exclusive lock on the job, across processes, for one cycle."""
    folder = state_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job}.lock"
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobLockedError(
                f"job {job} is already running (lock {path}); wait for it to finish"
            ) from None
        yield
    finally:
        handle.close()


def _now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


__all__ = ["JobLockedError", "SyncEngine"]
