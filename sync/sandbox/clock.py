"""Timestamps of the sandbox: integer microseconds since the Unix epoch, in UTC.

Every write takes its `updated_at` from one `MonotonicClock`, so two writes never
share a timestamp and lists ordered by `updated_at` stay stable.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MonotonicClock:
    """A wall clock in microseconds that returns a strictly larger value on every call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_us = 0

    def now_us(self) -> int:
        """Return the current time in microseconds, at least one more than the last result."""
        with self._lock:
            self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
            return self._last_us

    def advance_past(self, value_us: int) -> None:
        """Make every later `now_us` result larger than value_us."""
        with self._lock:
            self._last_us = max(self._last_us, value_us)


def format_us(value_us: int) -> str:
    """Format epoch microseconds as `2026-12-04T19:57:07.123456Z`, always with six digits."""
    moment = EPOCH + timedelta(microseconds=value_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_us(value: datetime) -> int:
    """Convert an aware datetime to epoch microseconds.

    Raises:
        ValueError: value has no UTC offset.
    """
    if value.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    delta = value.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_timestamp(text: str) -> int:
    """Parse an ISO 8601 timestamp with an offset (or `Z`) into epoch microseconds.

    A `+` in an offset that a client forgot to percent-encode arrives as a space,
    so a space before the offset is read as `+`.

    Raises:
        ValueError: text is not ISO 8601 or has no offset.
    """
    candidate = text.strip()
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        parsed = datetime.fromisoformat(candidate.replace(" ", "+"))
    return to_us(parsed)
