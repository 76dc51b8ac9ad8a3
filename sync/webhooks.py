"""Receive Eyekiosk webhook deliveries and run the matching jobs early.

A delivery only moves a job's next run forward. The schedule keeps running, so
a lost or rejected delivery delays a change until the next scheduled run and
loses nothing.

When ``[webhooks] listen`` is set, the daemon serves a small Starlette app with
uvicorn on a background thread:

- ``POST {path}`` takes one delivery, checks it and triggers the jobs that the
  event concerns: ``inventory.updated`` triggers every job, ``order.*`` events
  trigger the jobs with a ``[jobs.orders]`` table. The jobs run on the
  scheduler's threads, never in the request, so the response is sent at once.
- ``GET {path}/health`` returns 200, for the reverse proxy's health check.

Eyekiosk delivers webhooks over HTTPS only. The receiver serves plain HTTP, so
it listens on loopback (or an internal interface) behind the operator's HTTPS
reverse proxy, and the subscription URL is the proxy's public ``https://`` URL.
The local sandbox also delivers to ``http://127.0.0.1`` for tests.

``eyekiosk-sync webhooks create`` stores the signing secret, which Eyekiosk
returns only once, in ``{state.dir}/webhook_secrets.json`` (mode 0600), keyed by
subscription id. The receiver accepts a signature made with any stored secret
and rereads the file when it changes. To rotate a secret without a restart,
create a new subscription, then delete the old one.

Responses of ``POST {path}``:

    202  accepted; the listed jobs were triggered (none when no job wants the event)
    200  repeated X-Webhook-Id; nothing triggered
    400  the body is not a delivery, a header contradicts the body, or created_at
         is more than max_age_s away from now (a replay)
    401  X-Webhook-Signature is missing or matches no stored secret
    413  the body is larger than max_body_bytes
    503  the daemon is stopping; the next scheduled run picks the change up

Logs name the event type and delivery id only, never the body or a secret.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.errors import ConfigError, StateError

if TYPE_CHECKING:
    from sync.background import BackgroundServer
    from sync.config import JobSettings, Settings

log = logging.getLogger("eyekiosk_sync.webhooks")

DEFAULT_PATH = "/eyekiosk/webhooks"
DEFAULT_MAX_AGE_S = 300.0
DEFAULT_MAX_BODY_BYTES = 65_536
DEFAULT_RECENT_IDS = 1_000
SECRETS_FILE = "webhook_secrets.json"
SECRETS_FILE_MODE = 0o600
SECRETS_DIR_MODE = 0o700
SIGNATURE_PREFIX = "sha256="
INVENTORY_EVENT = "inventory.updated"
ORDER_EVENT_PREFIX = "order."
# The sender's X-Webhook-Timestamp may round created_at to whole seconds.
TIMESTAMP_HEADER_SLACK_S = 1.0
REJECTION_LOG_INTERVAL_S = 60.0
MAX_LOGGED_HEADER_CHARS = 64
STARTUP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 5

Trigger = Callable[[str], bool]


# Settings


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6) into host and port.

    Raises:
        ValueError: the text is not HOST:PORT or the port is out of range.
    """
    host, separator, port_text = text.strip().rpartition(":")
    example = "e.g. 127.0.0.1:8780 or [::1]:8780"
    if not separator or not host or not port_text.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT, {example}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets, {example}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{text!r}: port {port} is out of range 0-65535")
    return host, port


def is_loopback_host(host: str) -> bool:
    """Tell whether ``host`` is ``localhost`` or an address in 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookSettings(BaseModel):
    """The ``[webhooks]`` table: where the daemon's webhook receiver listens and what it accepts.

    Attributes:
        listen: ``HOST:PORT`` to serve the receiver on, such as ``127.0.0.1:8780``;
            None or empty turns the receiver off. Port 0 takes a free port.
        path: URL path of deliveries; ``{path}/health`` is the health check.
        max_age_s: seconds that a delivery's ``created_at`` may be away from now,
            either way; older deliveries are rejected as replays.
        max_body_bytes: larger bodies are rejected with 413 before they are parsed.
    """

    model_config = ConfigDict(extra="forbid")

    listen: str | None = None
    path: str = DEFAULT_PATH
    max_age_s: float = Field(default=DEFAULT_MAX_AGE_S, gt=0)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=16 * 1024 * 1024)

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_listen(value)
        return value.strip()

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        path = value.strip().rstrip("/")
        if not path.startswith("/") or any(char in path for char in " ?#"):
            raise ValueError(f"{value!r} must be a URL path such as {DEFAULT_PATH!r}")
        return path

    def address(self) -> tuple[str, int]:
        """Return the host and port of ``listen``.

        Raises:
            ConfigError: when ``listen`` is not set.
        """
        if self.listen is None:
            raise ConfigError(
                "webhooks.listen is not set; set it to HOST:PORT, e.g. 127.0.0.1:8780"
            )
        return parse_listen(self.listen)


# Signing secrets


def secrets_path(settings: Settings) -> Path:
    """Return the path of the webhook secrets file in the state folder."""
    return settings.state.dir / SECRETS_FILE


class WebhookSecrets:
    """JSON file that maps webhook subscription ids to their signing secrets.

    The file has mode 0600 and every change replaces it atomically, so a reader
    never sees half a file. Error messages name the file, never a secret.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, str]:
        """Read the stored secrets.

        Returns:
            Subscription id mapped to secret; empty when the file does not exist.

        Raises:
            StateError: the file exists but cannot be read or is not a JSON object of strings.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise StateError(
                f"cannot read the webhook secrets file {self.path}: {error.strerror}"
            ) from error

        self._warn_if_readable_by_others()
        hint = "restore it from a backup, or delete it and create the subscriptions again"
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            # NOTE: the decode error is left out because its message may quote a secret.
            raise StateError(
                f"the webhook secrets file {self.path} is not valid JSON; {hint}"
            ) from None
        if not isinstance(data, dict) or not all(
            isinstance(key, str) and isinstance(value, str) and value for key, value in data.items()
        ):
            raise StateError(
                f"the webhook secrets file {self.path} must map subscription ids to "
                f"secret strings; {hint}"
            )
        return data

    def stamp(self) -> tuple[int, int, int] | None:
        """Return the file's inode, size and modification time, or None when it is missing."""
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_ino, status.st_size, status.st_mtime_ns

    def add(self, webhook_id: str, secret: str) -> None:
        """Store the secret of a subscription, replacing any stored for the same id.

        NOTE: two commands that change the file at the same moment can lose one
        change, because each reads, changes and writes the whole file.

        Raises:
            StateError: the file cannot be read or written.
        """
        secrets = self.load()
        secrets[webhook_id] = secret
        self._save(secrets)

    def remove(self, webhook_id: str) -> bool:
        """Delete the stored secret of a subscription; return False when none was stored.

        Raises:
            StateError: the file cannot be read or written.
        """
        secrets = self.load()
        if secrets.pop(webhook_id, None) is None:
            return False
        self._save(secrets)
        return True

    def _save(self, secrets: Mapping[str, str]) -> None:
        directory = self.path.parent
        payload = json.dumps(dict(sorted(secrets.items())), indent=2) + "\n"
        try:
            directory.mkdir(mode=SECRETS_DIR_MODE, parents=True, exist_ok=True)
            _write_private_file(self.path, payload)
        except OSError as error:
            raise StateError(
                f"cannot write the webhook secrets file {self.path}: {error.strerror}; "
                "check that this user may write the state folder"
            ) from error

    def _warn_if_readable_by_others(self) -> None:
        with contextlib.suppress(OSError):
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning(
                    "webhook.secrets_file_mode path=%s mode=%o; run chmod 600 on it",
                    self.path,
                    mode,
                )


def _write_private_file(path: Path, text: str) -> None:
    """Write ``text`` atomically: a temporary file with mode 0600, fsync, rename."""
    directory = path.parent
    # mkstemp creates the file with mode 0600, so no other user can read it at any point.
    handle, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, SECRETS_FILE_MODE)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class _SecretCache:
    """The stored secrets, reread whenever the file changes, so rotation needs no restart."""

    def __init__(self, store: WebhookSecrets) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._secrets: tuple[str, ...] = ()

    def load(self) -> int:
        """Read the file now and return how many secrets it holds.

        Raises:
            StateError: the file cannot be read or parsed.
        """
        with self._lock:
            stamp = self._store.stamp()
            self._secrets = tuple(self._store.load().values())
            self._stamp = stamp
            return len(self._secrets)

    def current(self) -> tuple[str, ...]:
        """Return the secrets, rereading the file first if it changed since the last read."""
        with self._lock:
            stamp = self._store.stamp()
            if stamp == self._stamp:
                return self._secrets
            # The stamp is kept even on failure, so a broken file is logged once per change.
            self._stamp = stamp
            try:
                self._secrets = tuple(self._store.load().values())
            except StateError as error:
                log.error(
                    "webhook.secrets_unreadable error=%s; keeping the previous secrets", error
                )
            else:
                log.info("webhook.secrets_loaded count=%d", len(self._secrets))
            return self._secrets


# Checks of one delivery


def sign(body: bytes, secret: str) -> str:
    """Return the ``X-Webhook-Signature`` value of ``body``: ``sha256=`` and the hex HMAC."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, header: str, secrets: Iterable[str]) -> bool:
    """Tell whether ``header`` is the HMAC-SHA256 signature of ``body`` under any of ``secrets``.

    Each comparison takes constant time, and every secret is tried even after a match.
    """
    if not header.startswith(SIGNATURE_PREFIX):
        return False
    received_digest = header[len(SIGNATURE_PREFIX) :].strip().lower().encode()
    matched = False
    for secret in secrets:
        expected_digest = sign(body, secret)[len(SIGNATURE_PREFIX) :].encode()
        matched |= hmac.compare_digest(expected_digest, received_digest)
    return matched


class InvalidDeliveryError(ValueError):
    """A signed body that is not a delivery, or whose headers contradict it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WebhookDelivery:
    """The signed fields of one delivery that the receiver acts on."""

    id: str
    type: str
    created_at: datetime


def parse_delivery(body: bytes, headers: Mapping[str, str]) -> WebhookDelivery:
    """Read id, type and created_at from a signed body and check the headers against them.

    The signature covers the body only, so the body's fields are the ones trusted.
    ``X-Webhook-Id``, ``X-Webhook-Event`` and ``X-Webhook-Timestamp`` must match
    them when present.

    Raises:
        InvalidDeliveryError: with the reason ``invalid_body`` or ``header_mismatch``.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidDeliveryError("invalid_body") from None
    if not isinstance(data, dict):
        raise InvalidDeliveryError("invalid_body")
    delivery_id, event_type = data.get("id"), data.get("type")
    if not isinstance(delivery_id, str) or not delivery_id or len(delivery_id) > 128:
        raise InvalidDeliveryError("invalid_body")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidDeliveryError("invalid_body")
    created_at = _parse_timestamp(data.get("created_at"))
    if created_at is None:
        raise InvalidDeliveryError("invalid_body")

    if headers.get("x-webhook-id", delivery_id) != delivery_id:
        raise InvalidDeliveryError("header_mismatch")
    if headers.get("x-webhook-event", event_type) != event_type:
        raise InvalidDeliveryError("header_mismatch")
    if "x-webhook-timestamp" in headers:
        stated = _parse_timestamp(headers["x-webhook-timestamp"])
        if stated is None or abs((stated - created_at).total_seconds()) > TIMESTAMP_HEADER_SLACK_S:
            raise InvalidDeliveryError("header_mismatch")
    return WebhookDelivery(id=delivery_id, type=event_type, created_at=created_at)


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


def jobs_for_event(event_type: str, jobs: Sequence[JobSettings]) -> list[str]:
    """Return the names of the jobs that an event concerns.

    ``inventory.updated`` concerns every job, because remote stock changed.
    ``order.*`` events concern the jobs that pull orders. Other events concern none.
    """
    if event_type == INVENTORY_EVENT:
        return [job.name for job in jobs]
    if event_type.startswith(ORDER_EVENT_PREFIX):
        return [job.name for job in jobs if job.orders is not None]
    return []


class RecentIds:
    """The newest delivery ids, to drop a delivery that arrives again.

    Only ``size`` ids are kept, in memory. After a restart, or once an id has
    aged out, a repeat is still caught by the max_age_s check when it is old
    enough. Otherwise it triggers one more early run, which is harmless.
    """

    def __init__(self, size: int = DEFAULT_RECENT_IDS) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, delivery_id: str) -> bool:
        """Remember an id; return False when it was remembered already."""
        with self._lock:
            if delivery_id in self._ids:
                return False
            self._ids[delivery_id] = None
            while len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True


class _RejectionLog:
    """Logs rejected deliveries at WARNING, at most once per interval and reason.

    Rejections are what an attacker can send in bulk, so repeats are counted
    and the count goes out with the next line of the same reason.
    """

    def __init__(self, interval_s: float = REJECTION_LOG_INTERVAL_S) -> None:
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def warning(self, reason: str, status: int, headers: Mapping[str, str]) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self._interval_s:
                self._suppressed[reason] += 1
                return
            self._last[reason] = now
            suppressed = self._suppressed.pop(reason, 0)
        log.warning(
            "webhook.rejected reason=%s status=%d event=%s id=%s suppressed=%d",
            reason,
            status,
            _loggable(headers.get("x-webhook-event")),
            _loggable(headers.get("x-webhook-id")),
            suppressed,
        )


def _loggable(value: str | None) -> str:
    """Return an unverified header value safe to log: short, and only id characters."""
    if not value or len(value) > MAX_LOGGED_HEADER_CHARS:
        return "-"
    if not all(char.isascii() and (char.isalnum() or char in "._:-") for char in value):
        return "-"
    return value


# The receiver


class WebhookReceiver:
    """The webhook endpoint served by uvicorn on a background thread.

    ``start`` and ``stop`` come as a pair, each once.

    Args:
        settings: the ``[webhooks]`` table.
        secrets: the stored signing secrets.
        jobs: the configured jobs, which events are mapped to.
        trigger: runs a job early by name and returns False when it cannot,
            such as ``Daemon.trigger``. It must return quickly, because it is
            called while the request waits.
        now: clock returning an aware UTC datetime, for tests.
        recent_ids: how many delivery ids are kept to drop repeats.
    """

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        secrets: WebhookSecrets,
        jobs: Sequence[JobSettings],
        trigger: Trigger,
        now: Callable[[], datetime] | None = None,
        recent_ids: int = DEFAULT_RECENT_IDS,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self._jobs = list(jobs)
        self._trigger = trigger
        self._now = now or (lambda: datetime.now(UTC))
        self._secret_cache = _SecretCache(secrets)
        self._recent = RecentIds(recent_ids)
        self._rejections = _RejectionLog()
        self.app = Starlette(
            routes=[
                Route(settings.path, self._receive, methods=["POST"]),
                Route(f"{settings.path}/health", self._health, methods=["GET"]),
            ]
        )
        self._background: BackgroundServer | None = None
        self._started = False

    @property
    def url(self) -> str:
        """Local URL of deliveries, such as ``http://127.0.0.1:8780/eyekiosk/webhooks``.

        Raises:
            RuntimeError: the receiver is not running.
        """
        if self._background is None:
            raise RuntimeError("the webhook receiver is not running")
        host, port = self._background.address[:2]
        url_host = f"[{host}]" if ":" in host else host
        return f"http://{url_host}:{port}{self.settings.path}"

    # Lifecycle

    def start(self) -> None:
        """Load the secrets, bind the listen address and serve on a background thread.

        Raises:
            RuntimeError: when called twice, or uvicorn did not start in time.
            ConfigError: the listen address cannot be bound.
            StateError: the secrets file cannot be read or parsed.
        """
        if self._started:
            raise RuntimeError("the webhook receiver was started already")
        self._started = True
        import uvicorn

        from sync.background import BackgroundServer

        count = self._secret_cache.load()
        sock = _bind(*self.settings.address())
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        background = BackgroundServer(
            config,
            sock,
            name="webhook receiver",
            startup_timeout=STARTUP_TIMEOUT_S,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        background.start()
        self._background = background

        log.info("webhook.receiver.started url=%s secrets=%d", self.url, count)
        if count == 0:
            log.warning(
                "webhook.no_secrets path=%s; every delivery is rejected until "
                "`eyekiosk-sync webhooks create` stores a secret",
                self.secrets.path,
            )

    def stop(self) -> None:
        """Stop taking deliveries, finish the requests in flight and release the port.

        Raises:
            RuntimeError: when not running.
        """
        if self._background is None:
            raise RuntimeError("the webhook receiver is not running")
        if not self._background.stop():
            log.warning("webhook.receiver.stop_timeout seconds=%s", SHUTDOWN_TIMEOUT_S)
        self._background = None
        log.info("webhook.receiver.stopped")

    # Endpoints

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _receive(self, request: Request) -> Response:
        headers = request.headers

        # Guard: size, signature, body, age, repeat.
        body = await self._read_body(request)
        if body is None:
            return self._reject(413, "body_too_large", headers)
        signature = headers.get("x-webhook-signature")
        if not signature:
            return self._reject(401, "missing_signature", headers)
        if not signature_matches(body, signature, self._secret_cache.current()):
            return self._reject(401, "invalid_signature", headers)
        try:
            delivery = parse_delivery(body, headers)
        except InvalidDeliveryError as error:
            return self._reject(400, error.reason, headers)
        age_s = (self._now() - delivery.created_at).total_seconds()
        if abs(age_s) > self.settings.max_age_s:
            return self._reject(400, "stale_timestamp", headers)
        if not self._recent.add(delivery.id):
            log.info("webhook.duplicate event=%s id=%s", delivery.type, delivery.id)
            return JSONResponse({"status": "duplicate"}, status_code=200)

        # Trigger: each job runs on the scheduler's threads, never in this request.
        job_names = jobs_for_event(delivery.type, self._jobs)
        triggered = [name for name in job_names if self._trigger(name)]
        if job_names and not triggered:
            log.warning(
                "webhook.not_triggered event=%s id=%s reason=daemon_stopping",
                delivery.type,
                delivery.id,
            )
            return JSONResponse({"status": "unavailable"}, status_code=503)
        log.info(
            "webhook.accepted event=%s id=%s jobs=%s",
            delivery.type,
            delivery.id,
            ",".join(triggered) or "-",
        )
        return JSONResponse({"status": "accepted", "jobs": triggered}, status_code=202)

    async def _read_body(self, request: Request) -> bytes | None:
        """Return the body, or None as soon as it is known to exceed max_body_bytes."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        # Content-Length may be absent (chunked) or wrong, so count while reading too.
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    def _reject(self, status: int, reason: str, headers: Mapping[str, str]) -> Response:
        self._rejections.warning(reason, status, headers)
        return JSONResponse({"status": "rejected", "reason": reason}, status_code=status)


def _bind(host: str, port: int) -> socket.socket:
    """Bind a TCP socket to host and port; uvicorn listens on it.

    Raises:
        ConfigError: the address cannot be resolved or bound.
    """
    from sync.background import bind_tcp

    where = f"webhooks.listen: cannot listen on {host}:{port}"
    try:
        return bind_tcp(host, port)
    except socket.gaierror as error:
        raise ConfigError(f"{where}: {error.strerror}; check the host name") from None
    except OSError as error:
        raise ConfigError(
            f"{where}: {error.strerror}; pick a free port or stop what uses it"
        ) from None


def start_receiver(settings: Settings, trigger: Trigger) -> WebhookReceiver | None:
    """Start the webhook receiver when ``[webhooks] listen`` is set.

    Returns:
        The running receiver, or None when ``listen`` is not set.

    Raises:
        ConfigError: the listen address cannot be bound.
        StateError: the secrets file cannot be read or parsed.
    """
    if settings.webhooks.listen is None:
        return None
    receiver = WebhookReceiver(
        settings.webhooks,
        secrets=WebhookSecrets(secrets_path(settings)),
        jobs=settings.jobs,
        trigger=trigger,
    )
    receiver.start()
    return receiver


__all__ = [
    "InvalidDeliveryError",
    "RecentIds",
    "WebhookDelivery",
    "WebhookReceiver",
    "WebhookSecrets",
    "WebhookSettings",
    "is_loopback_host",
    "jobs_for_event",
    "parse_delivery",
    "parse_listen",
    "secrets_path",
    "sign",
    "signature_matches",
    "start_receiver",
]
