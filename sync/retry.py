"""Retry of Partner API calls: exponential backoff with full jitter, capped by attempts and time.

Only TransientAPIError (429, 5xx, transport failures) is retried. A 429's
Retry-After is a floor for the wait: the loop never retries sooner than the
server requests. When that wait exceeds ``max_delay`` or the time left under
``total_timeout``, the loop gives up and raises the 429 instead of retrying early.

NOTE: stamina 26.1 was considered and not used. Its backoff hook may return a
float to honour Retry-After, but that value bypasses ``wait_max`` and the total
timeout, its jitter is added on top of the exponential delay instead of full
jitter, and it offers no injectable sleep, so tests could not record the waits.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from sync.errors import RateLimitedError, TransientAPIError

logger = logging.getLogger("eyekiosk_sync.client.retry")

T = TypeVar("T")

DEFAULT_ATTEMPTS = 5
DEFAULT_BASE_DELAY = 0.5
DEFAULT_MAX_DELAY = 30.0
DEFAULT_TOTAL_TIMEOUT = 120.0

# Jitter needs no cryptographic randomness.
_RANDOM = random.Random()  # noqa: S311


def sleep(seconds: float) -> None:
    """Block for ``seconds``; the default sleep of every retry loop.

    Tests replace this module attribute to switch real waiting off everywhere.
    """
    time.sleep(seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """Limits of the retry loop around one Partner API call.

    Attributes:
        attempts: maximum number of HTTP attempts, the first one included.
        base_delay: cap of the first backoff in seconds, doubled per retry.
        max_delay: maximum wait before any single retry, in seconds.
        total_timeout: maximum seconds from the first attempt until a retry starts.
        jitter: draw each wait uniformly from zero to the exponential cap
            ("full jitter"); without it the wait is the cap itself.
    """

    attempts: int = DEFAULT_ATTEMPTS
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0 or self.total_timeout < 0:
            raise ValueError("base_delay, max_delay and total_timeout must not be negative")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """Build a policy that makes one attempt and never retries."""
        return cls(attempts=1)

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Compute the wait before retry ``retry_number`` (1 for the first retry).

        Args:
            retry_number: 1-based number of the retry about to happen.
            rng: random source for the jitter; the module's default when None.

        Returns:
            Seconds to wait, between 0 and ``min(max_delay, base_delay * 2**(retry_number-1))``.
        """
        try:
            cap = min(self.max_delay, self.base_delay * 2.0 ** (retry_number - 1))
        except OverflowError:
            cap = self.max_delay
        if not self.jitter:
            return cap
        source = rng if rng is not None else _RANDOM
        return source.uniform(0.0, cap)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header as seconds to wait.

    Args:
        value: the header value: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).
        now: the current time for an HTTP-date; the system clock when None.

    Returns:
        Non-negative seconds, 0 for a date in the past, or None when the
        header is absent or malformed.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()

    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def retry_delay(
    policy: RetryPolicy,
    retry_number: int,
    error: TransientAPIError,
    *,
    elapsed: float,
    rng: random.Random | None = None,
) -> float | None:
    """Decide how long to wait before the next attempt, or that there is none.

    Args:
        policy: the limits to apply.
        retry_number: 1-based number of the retry about to happen.
        error: the failure of the attempt that just ended.
        elapsed: seconds since the first attempt started.
        rng: random source for the jitter.

    Returns:
        Seconds to wait, or None when the attempts, ``max_delay`` or
        ``total_timeout`` leave no room for another attempt.
    """
    if retry_number >= policy.attempts:
        return None

    delay = policy.backoff(retry_number, rng)
    if isinstance(error, RateLimitedError) and error.retry_after is not None:
        if error.retry_after > policy.max_delay:
            return None
        delay = max(delay, error.retry_after)

    if elapsed + delay > policy.total_timeout:
        return None
    return delay


def call_with_retry(
    operation: Callable[[], T],
    *,
    policy: RetryPolicy,
    description: str,
    sleep_fn: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    retry_on: tuple[type[TransientAPIError], ...] = (TransientAPIError,),
) -> T:
    """Call ``operation`` until it succeeds or the policy gives up.

    Args:
        operation: one attempt; raises TransientAPIError to request a retry.
        policy: the limits to apply.
        description: what is being called, such as ``"GET /api/v1/partner/frames"``, for logs.
        sleep_fn: waits between attempts; this module's ``sleep`` when None.
        clock: monotonic clock in seconds, for ``total_timeout``.
        rng: random source for the jitter.
        retry_on: the transient errors to retry. Calls that are unsafe to
            repeat once the server may have acted, such as creating a webhook,
            pass a narrower tuple.

    Returns:
        The result of the first successful attempt.

    Raises:
        TransientAPIError: the last failure, once the policy allows no more
            attempts, or at once when it is not in ``retry_on``.
        Exception: any other exception of ``operation``, at once and unchanged.
    """
    started = clock()
    retry_number = 0

    while True:
        try:
            return operation()
        except TransientAPIError as error:
            if not isinstance(error, retry_on):
                raise
            retry_number += 1
            delay = retry_delay(policy, retry_number, error, elapsed=clock() - started, rng=rng)
            if delay is None:
                raise

            logger.warning(
                "retrying %s after %s (attempt %d of %d failed, waiting %.2f s)",
                description,
                type(error).__name__,
                retry_number,
                policy.attempts,
                delay,
                extra={
                    "event": "partner_call_retry",
                    "call": description,
                    "reason": type(error).__name__,
                    "status": error.status,
                    "attempt": retry_number,
                    "wait_seconds": delay,
                },
            )
            (sleep_fn or sleep)(delay)
