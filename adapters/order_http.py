"""HTTP order sink, selected with ``adapter = "http"``: one POST per order.

Each order is sent as ``POST <url>`` with the JSON body
``{"order": {...}, "prescriptions": [...]}`` (``prescriptions`` only with
``prescriptions = true``) and an ``Idempotency-Key: <order id>:<updated_at>``
header. The key is the same on every retry and every later delivery of the same
version of the order, so a receiver that honours it stores each version once.

Outcomes per order:
    2xx: delivered.
    408, 429 and 5xx, or no response: retried up to ``max_attempts`` times with
        exponential backoff (``backoff_s`` doubled per retry, at most
        ``max_backoff_s``; a numeric ``Retry-After`` header raises the wait up
        to that cap). When the attempts run out the order fails.
    Any other 4xx: failed at once; the receiver rejected the order.
When an order gets no response after every attempt, the receiver is taken as
down: the remaining orders of the call fail without being sent.

The optional auth header's value comes from the environment variable that
``auth_env`` names or the file that ``auth_file`` names, never from the TOML
file. Logs and errors show the URL without query string or credentials and
never a response body, because a receiver may echo the order back.

Options:
    url: the receiver's http(s) URL.
    prescriptions: fetch and send prescriptions; default false.
    auth_header: header name for the secret; default ``Authorization``.
    auth_env / auth_file: where the header's value is (at most one of them).
    timeout_s: seconds for connect, read, write and pool; default 10.
    max_attempts: attempts per order, the first included; default 4.
    backoff_s: first wait before a retry, in seconds; default 0.5.
    max_backoff_s: maximum wait before any retry, in seconds; default 8.
    verify_tls: check the receiver's certificate; default true.
    ca_file: CA bundle to check it against instead of the system's.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import Field, field_validator, model_validator

from adapters.base import AdapterOptions, DeliveryResult, OrderDelivery, OrderSink, SourceContext
from sync.errors import ConfigError

log = logging.getLogger("eyekiosk_sync.adapters.http")

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF_S = 0.5
DEFAULT_MAX_BACKOFF_S = 8.0
RETRIED_STATUSES = frozenset({408, 429})
IDEMPOTENCY_HEADER = "Idempotency-Key"


class HttpSinkOptions(AdapterOptions):
    """Options of the HTTP sink; see the module docstring."""

    url: str
    prescriptions: bool = False
    auth_header: str = "Authorization"
    auth_env: str | None = None
    auth_file: Path | None = None
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20)
    backoff_s: float = Field(default=DEFAULT_BACKOFF_S, ge=0)
    max_backoff_s: float = Field(default=DEFAULT_MAX_BACKOFF_S, ge=0)
    verify_tls: bool = True
    ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{safe_url(value)!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_secret_source(self) -> HttpSinkOptions:
        if self.auth_env and self.auth_file:
            raise ValueError("set auth_env or auth_file, not both")
        return self


def safe_url(url: str) -> str:
    """Return the URL without credentials, query string or fragment, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def idempotency_key(delivery: OrderDelivery) -> str:
    """Return ``<order id>:<updated_at>``, stable for one version of one order."""
    return f"{delivery.order_id}:{delivery.order.get('updated_at', '')}"


class HttpOrderSink(OrderSink[HttpSinkOptions]):
    """POSTs each order to the operator's receiver; see the module docstring.

    Attributes:
        sleep: waits between retries; tests replace it to record the waits.
    """

    options_model = HttpSinkOptions

    def __init__(
        self,
        options: HttpSinkOptions,
        *,
        context: SourceContext,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Build the sink and its HTTP client.

        Raises:
            ConfigError: the auth variable is unset or the auth file cannot be read.
        """
        super().__init__(options, context=context)
        self.sleep: Callable[[float], None] = time.sleep
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        secret = self._auth_value()
        if secret is not None:
            headers[options.auth_header] = secret
        verify: bool | str = options.verify_tls
        if options.ca_file is not None:
            verify = str(self._resolve(options.ca_file))
        self._http = httpx.Client(
            timeout=httpx.Timeout(options.timeout_s),
            headers=headers,
            verify=verify,
            transport=transport,
            follow_redirects=False,
        )

    def _resolve(self, path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else self.context.config_dir / path

    def _auth_value(self) -> str | None:
        options = self.options
        if options.auth_env:
            value = os.environ.get(options.auth_env)
            if not value:
                raise ConfigError(
                    f"http sink: the environment variable {options.auth_env} (auth_env) is "
                    "unset or empty; set it to the receiver's auth header value"
                )
            return value.strip()
        if options.auth_file:
            path = self._resolve(options.auth_file)
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ConfigError(
                    f"http sink: cannot read auth_file {path}: {error.strerror}"
                ) from error
        return None

    def describe(self) -> str:
        return f"http POST {safe_url(self.options.url)}"

    def close(self) -> None:
        self._http.close()

    def deliver(self, deliveries: Sequence[OrderDelivery]) -> list[DeliveryResult]:
        """POST the orders one by one; see the module docstring for the outcomes."""
        results: list[DeliveryResult] = []
        unreachable: str | None = None
        for delivery in deliveries:
            if unreachable is not None:
                results.append(DeliveryResult(delivery.order_id, False, f"not sent: {unreachable}"))
                continue
            result, reached = self._post(delivery)
            results.append(result)
            if not reached:
                unreachable = f"the receiver did not respond ({result.error})"
        return results

    def _post(self, delivery: OrderDelivery) -> tuple[DeliveryResult, bool]:
        """Send one order with retries; return its result and whether the receiver answered."""
        body: dict[str, object] = {"order": delivery.order}
        if self.options.prescriptions:
            body["prescriptions"] = delivery.prescriptions
        headers = {IDEMPOTENCY_HEADER: idempotency_key(delivery)}
        where = self.describe()
        problem = ""
        answered = False

        for attempt in range(1, self.options.max_attempts + 1):
            retry_after: float | None = None
            try:
                response = self._http.post(self.options.url, json=body, headers=headers)
            except httpx.TransportError as error:
                problem = f"no response ({type(error).__name__})"
            else:
                answered = True
                status = response.status_code
                if 200 <= status < 300:
                    log.debug("http.delivered order_id=%s status=%d", delivery.order_id, status)
                    return DeliveryResult(delivery.order_id, True), True
                problem = f"status {status}"
                if not (status >= 500 or status in RETRIED_STATUSES):
                    message = f"{where} rejected the order with status {status}"
                    return DeliveryResult(delivery.order_id, False, message), True
                retry_after = _retry_after(response.headers.get("Retry-After"))

            if attempt < self.options.max_attempts:
                wait = self._backoff(attempt, retry_after)
                log.info(
                    "http.retry order_id=%s attempt=%d problem=%s wait_s=%.2f",
                    delivery.order_id, attempt, problem, wait,
                )  # fmt: skip
                self.sleep(wait)

        attempts = self.options.max_attempts
        message = f"{where} failed after {attempts} attempt(s): {problem}"
        return DeliveryResult(delivery.order_id, False, message), answered

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        wait = self.options.backoff_s * 2.0 ** (attempt - 1)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.options.max_backoff_s)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


__all__ = ["HttpOrderSink", "HttpSinkOptions", "idempotency_key", "safe_url"]
