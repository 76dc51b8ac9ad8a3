"""Webhook subscriptions of the sandbox and their signed deliveries.

Deliveries run on one background thread with httpx. The sandbox sends only to
loopback hosts: a subscription to any other host is rejected when it is created
or changed, so no event ever leaves the machine.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import queue
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from sync.models import WEBHOOK_EVENTS
from sync.sandbox.clock import MonotonicClock, format_us

logger = logging.getLogger("sync.sandbox.webhooks")

DELIVERY_TIMEOUT_SECONDS = 2.0
DELIVERY_LOG_SIZE = 1_000


class WebhookRejected(ValueError):
    """A subscription's URL or events are invalid. The message names the field and the reason."""


@dataclass
class Subscription:
    """One webhook subscription with its delivery record."""

    number: int
    url: str
    events: list[str]
    enabled: bool
    created_at_us: int
    secret: str = field(repr=False)
    last_delivery_at_us: int | None = None
    last_status_code: int | None = None
    failed_deliveries: int = 0

    @property
    def id(self) -> str:
        """API id of the subscription."""
        return f"wh_{self.number:08d}"

    def to_wire(self) -> dict[str, Any]:
        """Build the wire form without the secret."""
        last = self.last_delivery_at_us
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "enabled": self.enabled,
            "created_at": format_us(self.created_at_us),
            "delivery_status": {
                "last_delivery_at": format_us(last) if last is not None else None,
                "last_status_code": self.last_status_code,
                "failed_deliveries": self.failed_deliveries,
            },
        }


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver an event to a subscription."""

    event_id: str
    event_type: str
    webhook_id: str
    url: str
    status_code: int | None
    error: str | None
    delivered_at: str


def is_loopback_host(host: str) -> bool:
    """Tell whether host is `localhost` or an address in 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_url(url: str) -> None:
    """Check that url is an http or https URL to a loopback host.

    Raises:
        WebhookRejected: the scheme is not http or https, or the host is not loopback.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRejected(f"url {url!r} must be an absolute http or https URL")
    if not is_loopback_host(parts.hostname):
        raise WebhookRejected(
            f"url host {parts.hostname!r} is not loopback; the sandbox delivers webhooks "
            "only to 127.0.0.1, ::1 or localhost"
        )


def validate_events(events: list[str]) -> None:
    """Check that events is a non-empty list of known event types.

    Raises:
        WebhookRejected: the list is empty or names an unknown event.
    """
    if not events:
        raise WebhookRejected("events must name at least one event")
    unknown = [event for event in events if event not in WEBHOOK_EVENTS]
    if unknown:
        raise WebhookRejected(f"unknown events {unknown}; known events are {list(WEBHOOK_EVENTS)}")


def sign(body: bytes, secret: str) -> str:
    """Return the `X-Webhook-Signature` value of body: `sha256=` and the hex HMAC."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookHub:
    """Subscriptions, the event queue and the delivery thread.

    Args:
        clock: source of creation and event timestamps.
    """

    def __init__(self, clock: MonotonicClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}
        self._next_number = 1
        self._next_event = 1
        self._deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[Subscription, str, str, bytes] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> None:
        """Start the delivery thread.

        Raises:
            RuntimeError: the thread is already running.
        """
        if self._thread is not None:
            raise RuntimeError("webhook delivery thread is already running")
        self._thread = threading.Thread(target=self._deliver_forever, name="sandbox-webhooks")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Deliver what is queued, then stop the delivery thread.

        Raises:
            RuntimeError: the thread is not running.
        """
        if self._thread is None:
            raise RuntimeError("webhook delivery thread is not running")
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._thread = None

    def reset(self) -> None:
        """Drop every subscription, queued event and delivery record."""
        self.wait_idle()
        with self._lock:
            self._subscriptions.clear()
            self._deliveries.clear()
            self._next_number = 1
            self._next_event = 1

    # Subscriptions

    def create(self, url: str, events: list[str], enabled: bool = True) -> dict[str, Any]:
        """Create a subscription and return its wire form with the secret.

        Raises:
            WebhookRejected: url or events are invalid.
        """
        validate_url(url)
        validate_events(events)
        with self._lock:
            subscription = Subscription(
                number=self._next_number,
                url=url,
                events=list(dict.fromkeys(events)),
                enabled=enabled,
                created_at_us=self._clock.now_us(),
                secret="whsec_" + secrets.token_urlsafe(32),
            )
            self._next_number += 1
            self._subscriptions[subscription.id] = subscription
        logger.info("sandbox.webhook.created webhook_id=%s events=%s", subscription.id, events)
        return {**subscription.to_wire(), "secret": subscription.secret}

    def list_subscriptions(self) -> list[dict[str, Any]]:
        """Return every subscription's wire form, oldest first."""
        with self._lock:
            return [item.to_wire() for item in self._subscriptions.values()]

    def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: list[str] | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any] | None:
        """Change the given fields of a subscription and return its wire form, or None if unknown.

        Raises:
            WebhookRejected: url or events are invalid.
        """
        if url is not None:
            validate_url(url)
        if events is not None:
            validate_events(events)
        with self._lock:
            subscription = self._subscriptions.get(webhook_id)
            if subscription is None:
                return None
            if url is not None:
                subscription.url = url
            if events is not None:
                subscription.events = list(dict.fromkeys(events))
            if enabled is not None:
                subscription.enabled = enabled
            return subscription.to_wire()

    def delete(self, webhook_id: str) -> bool:
        """Delete a subscription; return False when it does not exist."""
        with self._lock:
            return self._subscriptions.pop(webhook_id, None) is not None

    # Events

    def emit(self, event_type: str, data: dict[str, Any]) -> str | None:
        """Queue one event for every enabled subscription to its type.

        Returns:
            The event id, or None when no subscription wants the event.
        """
        with self._lock:
            targets = [
                item
                for item in self._subscriptions.values()
                if item.enabled and event_type in item.events
            ]
            if not targets:
                return None
            event_id = f"evt_{self._next_event:08d}"
            self._next_event += 1
        created_at = format_us(self._clock.now_us())
        body = {"id": event_id, "type": event_type, "created_at": created_at, "data": data}
        raw = json.dumps(body, separators=(",", ":")).encode()
        for subscription in targets:
            self._queue.put((subscription, event_id, event_type, raw))
        return event_id

    def deliveries(self) -> list[Delivery]:
        """Return the most recent delivery attempts, oldest first."""
        with self._lock:
            return list(self._deliveries)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event has been attempted; return False on timeout."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    # Delivery thread

    def _deliver_forever(self) -> None:
        with httpx.Client(
            timeout=DELIVERY_TIMEOUT_SECONDS, trust_env=False, follow_redirects=False
        ) as client:
            while True:
                job = self._queue.get()
                try:
                    if job is None:
                        return
                    self._deliver(client, *job)
                except Exception:
                    logger.exception("sandbox.webhook.delivery_crashed")
                finally:
                    self._queue.task_done()

    def _deliver(
        self,
        client: httpx.Client,
        subscription: Subscription,
        event_id: str,
        event_type: str,
        raw: bytes,
    ) -> None:
        # The URL was checked at subscription time; check again in case of a bug elsewhere.
        validate_url(subscription.url)
        timestamp = json.loads(raw)["created_at"]
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Id": event_id,
            "X-Webhook-Event": event_type,
            "X-Webhook-Timestamp": timestamp,
            "X-Webhook-Signature": sign(raw, subscription.secret),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = client.post(subscription.url, content=raw, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        self._record(subscription, event_id, event_type, status, error)

    def _record(
        self,
        subscription: Subscription,
        event_id: str,
        event_type: str,
        status: int | None,
        error: str | None,
    ) -> None:
        now_us = self._clock.now_us()
        failed = status is None or not 200 <= status < 300
        with self._lock:
            subscription.last_delivery_at_us = now_us
            subscription.last_status_code = status
            subscription.failed_deliveries += int(failed)
            self._deliveries.append(
                Delivery(
                    event_id,
                    event_type,
                    subscription.id,
                    subscription.url,
                    status,
                    error,
                    format_us(now_us),
                )
            )
            del self._deliveries[:-DELIVERY_LOG_SIZE]
        log = logger.warning if failed else logger.info
        log(
            "sandbox.webhook.delivered event_id=%s event=%s webhook_id=%s status=%s error=%s",
            event_id,
            event_type,
            subscription.id,
            status,
            error,
        )
