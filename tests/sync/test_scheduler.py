"""Tests of the daemon: triggers, one run per job at a time, clean stop on SIGTERM."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.config import JobSettings, SourceSettings
from sync.engine import SyncEngine
from sync.runtime import open_client, state_store
from sync.sandbox import SandboxServer
from sync.scheduler import Daemon, build_trigger
from sync.state import StateStore
from tests.sync.harness import Installation, read_export

INVENTORY_PATH = "/api/v1/partner/inventory"


def _job(**fields: object) -> JobSettings:
    return JobSettings(name="shop", sources=[SourceSettings(adapter="csv")], **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"cron": "*/5 * * * *"}, CronTrigger),
        ({"interval_minutes": 2.5}, IntervalTrigger),
        ({}, IntervalTrigger),
    ],
    ids=["cron", "interval", "default"],
)
def test_build_trigger_kinds(fields: dict[str, object], kind: type) -> None:
    """A job gets a cron trigger for cron, otherwise an interval trigger (15 minutes by default)."""
    trigger = build_trigger(_job(**fields), "UTC")

    assert isinstance(trigger, kind)
    if not fields:
        assert trigger.interval.total_seconds() == 900  # type: ignore[attr-defined]


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _runs(installation: Installation) -> list[dict[str, object]]:
    with StateStore(installation.settings.state.url()) as store:
        return store.recent_runs("shop", limit=100)


def test_daemon_never_runs_one_job_twice_at_once(tmp_path: Path, sandbox: SandboxServer) -> None:
    """With runs longer than the interval, runs of one job never overlap."""
    installation = Installation.create(tmp_path, sandbox, job_options="interval_minutes = 0.01")
    assert sandbox.store is not None
    sandbox.store.inject_fault("latency", 50, latency_ms=1200, paths=["/api/v1/partner/frames"])
    settings = installation.settings
    active = 0
    most_active = 0
    lock = threading.Lock()

    with state_store(settings) as store, open_client(settings) as client:
        engine = SyncEngine(settings, client=client, store=store)
        original = engine.run_job

        def counting_run_job(job: JobSettings, **options: bool):  # type: ignore[no-untyped-def]
            nonlocal active, most_active
            with lock:
                active += 1
                most_active = max(most_active, active)
            try:
                return original(job, **options)
            finally:
                with lock:
                    active -= 1

        engine.run_job = counting_run_job  # type: ignore[method-assign]
        daemon = Daemon(settings, engine)
        daemon.start()
        try:
            assert _wait_until(lambda: len(store.recent_runs("shop")) >= 3, timeout=30)
        finally:
            daemon.stop()

    assert most_active == 1
    runs = sorted(_runs(installation), key=lambda run: run["started_at"])  # type: ignore[arg-type, return-value]
    for earlier, later in itertools.pairwise(runs):
        assert isinstance(earlier["finished_at"], datetime)
        assert earlier["finished_at"] <= later["started_at"]  # type: ignore[operator]


def test_daemon_start_stop_pairing(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Starting twice or stopping a daemon that is not running is an error."""
    installation = Installation.create(tmp_path, sandbox, job_options='cron = "0 0 1 1 *"')
    settings = installation.settings
    with state_store(settings) as store, open_client(settings) as client:
        daemon = Daemon(settings, SyncEngine(settings, client=client, store=store))
        with pytest.raises(RuntimeError):
            daemon.stop()
        daemon.start()
        with pytest.raises(RuntimeError):
            daemon.start()
        daemon.stop()
        with pytest.raises(RuntimeError):
            daemon.stop()


def test_run_sigterm_finishes_batches_in_flight(tmp_path: Path, sandbox: SandboxServer) -> None:
    """SIGTERM mid-post lets the batch in flight finish, commits state and exits 0.

    The next cycle then sends only what was left, and Eyekiosk ends up with the export's stock.
    """
    installation = Installation.create(tmp_path, sandbox, partner_options="concurrency = 1")
    installation.sync()
    rows = read_export()
    for row in rows[:300]:
        row["On Hand"] = str(int(row["On Hand"]) + 2)
    installation.write_rows(rows)
    store = sandbox.store
    assert store is not None
    before = len(store.inventory_batches())
    posts_before = store.request_counts().get(f"POST {INVENTORY_PATH}", 0)
    store.inject_fault("latency", 3, latency_ms=1000, paths=[INVENTORY_PATH])

    process = subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "--config", str(installation.config_path), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The first batch is waiting in the sandbox's latency when the signal arrives.
        assert _wait_until(
            lambda: store.request_counts().get(f"POST {INVENTORY_PATH}", 0) > posts_before, 30
        )
        process.send_signal(signal.SIGTERM)
        _stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 0, stderr
    applied = len(store.inventory_batches()) - before
    runs = _runs(installation)
    assert applied == 1
    assert runs[0]["outcome"] == "stopped"
    with StateStore(installation.settings.state.url()) as state:
        assert state.batch_counts("shop").get("posted", 0) == 0

    report = installation.sync()

    assert report.outcome == "success"
    assert report.changed == 200
    assert installation.sync().changed == 0
