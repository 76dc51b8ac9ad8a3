"""The daemon: run every configured job on its trigger until SIGTERM or SIGINT.

APScheduler 3 runs one job per ``[[jobs]]`` table. ``max_instances=1`` keeps two
runs of one job apart, ``coalesce=True`` folds the runs missed during downtime
into one, and ``misfire_grace_time`` drops a catch-up run that comes too late.
On SIGTERM the scheduler stops taking new runs, the engine stops after the
batches in flight, and the process exits 0 once state is committed.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.config import JobSettings, Settings
from sync.engine import JobLockedError, SyncEngine
from sync.errors import ConfigError
from sync.webhooks import WebhookReceiver, start_receiver

log = logging.getLogger("eyekiosk_sync.scheduler")

DEFAULT_INTERVAL_MINUTES = 15.0


def build_trigger(job: JobSettings, timezone: str) -> CronTrigger | IntervalTrigger:
    """Return the job's cron trigger, or its interval trigger (15 minutes when neither is set)."""
    if job.cron:
        return CronTrigger.from_crontab(job.cron, timezone=timezone)
    minutes = job.interval_minutes or DEFAULT_INTERVAL_MINUTES
    return IntervalTrigger(minutes=minutes, timezone=timezone)


class Daemon:
    """Schedules the engine's jobs. ``start`` and ``stop`` come as a pair, each once."""

    def __init__(self, settings: Settings, engine: SyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._scheduler = BackgroundScheduler(timezone=settings.scheduler.timezone)
        self._stopping = threading.Event()
        self._started = False
        self._stopped = False
        self.receiver: WebhookReceiver | None = None

    def start(self) -> None:
        """Add one scheduler job per configured job, start the webhook receiver
        when ``[webhooks] listen`` is set, and start the scheduler.

        Raises:
            RuntimeError: when called twice.
            ConfigError: the webhook receiver cannot listen on ``[webhooks] listen``.
            StateError: the webhook secrets file cannot be read.
        """
        if self._started:
            raise RuntimeError("the daemon is already started")
        self._started = True
        for job in self.settings.jobs:
            self._scheduler.add_job(
                self._run_job,
                trigger=build_trigger(job, self.settings.scheduler.timezone),
                args=[job],
                id=job.name,
                name=job.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=self.settings.scheduler.misfire_grace_s,
                # Interval jobs also run once at start-up; cron jobs wait for their time.
                next_run_time=None if job.cron else datetime.now(UTC),
            )
        self.receiver = start_receiver(self.settings, self.trigger)
        self._scheduler.start()
        log.info("daemon.started jobs=%d", len(self.settings.jobs))

    def stop(self) -> None:
        """Stop taking runs, let the running cycle finish its batches in flight, then return.

        Raises:
            RuntimeError: when not started or already stopped.
        """
        if not self._started or self._stopped:
            raise RuntimeError("the daemon is not running")
        self._stopped = True
        self._stopping.set()
        self.engine.stop_event.set()
        if self.receiver is not None:
            self.receiver.stop()
        self._scheduler.shutdown(wait=True)
        log.info("daemon.stopped")

    def wait(self) -> None:
        """Block until ``request_stop`` is called (from a signal handler)."""
        self._stopping.wait()

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        log.info("daemon.stop_requested signal=%s", signal.Signals(signum).name)
        self._stopping.set()
        self.engine.stop_event.set()

    def trigger(self, job_name: str) -> bool:
        """Run the job as soon as possible, e.g. after a webhook; its schedule stays as it is.

        A run already in progress is not doubled: the engine's job lock skips the
        early run then, and the next scheduled run picks the change up.

        Returns:
            False when no such job is scheduled or the daemon is stopping.
        """
        if self._stopping.is_set():
            return False
        scheduled = self._scheduler.get_job(job_name)
        if scheduled is None:
            return False
        job = next(job for job in self.settings.jobs if job.name == job_name)
        self._scheduler.add_job(
            self._run_job,
            args=[job],
            id=f"{job_name}-early",
            name=f"{job_name} (early)",
            replace_existing=True,
            misfire_grace_time=self.settings.scheduler.misfire_grace_s,
        )
        log.info("job.triggered job=%s", job_name)
        return True

    def _run_job(self, job: JobSettings) -> None:
        if self._stopping.is_set():
            return
        try:
            self.engine.run_job(job)
        except JobLockedError as error:
            log.warning("job.skipped job=%s reason=%s", job.name, error)
        except ConfigError as error:
            # The run is recorded as failed; other jobs keep their schedule.
            log.error("job.config_error job=%s error=%s", job.name, error)


def run_daemon(settings: Settings, engine: SyncEngine) -> int:
    """Run the daemon in the foreground until SIGTERM or SIGINT; return the exit code."""
    daemon = Daemon(settings, engine)
    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, daemon.request_stop)
    try:
        daemon.start()
        daemon.wait()
        daemon.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


__all__ = ["Daemon", "build_trigger", "run_daemon"]
