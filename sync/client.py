"""Client of the Eyekiosk Partner API, as written down in docs/partner-api.md.

``PartnerClient`` wraps one synchronous ``httpx.Client``. It may be shared by
threads: the connection pool and the request counter are thread-safe, and
``post_inventory_batches`` runs batches on its own thread pool. Every call goes
through ``_request``, which retries transient failures (see ``sync.retry``),
and every response goes through ``_raise_for_status``, the one place that maps
HTTP statuses to the errors of ``sync.errors``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from sync.errors import (
    EXCERPT_CHARS,
    InsufficientScopeError,
    NotFoundError,
    PartnerAPIError,
    PartnerRequestError,
    PartnerTransportError,
    RateLimitedError,
    ServerError,
    TransientAPIError,
    UnauthorizedError,
)
from sync.models import (
    API_PREFIX,
    MAX_INVENTORY_BATCH,
    MAX_PAGE_LIMIT,
    ErrorBody,
    ErrorDetail,
    Frame,
    InventoryBatch,
    InventoryResponse,
    InventoryUpdate,
    Order,
    Page,
    Prescription,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookEventType,
    WebhookPatch,
    WireModel,
    format_timestamp,
)
from sync.retry import RetryPolicy, call_with_retry, parse_retry_after

__all__ = ["InventoryResultCallback", "PartnerClient", "RetryPolicy"]

logger = logging.getLogger("eyekiosk_sync.client")

ModelT = TypeVar("ModelT", bound=WireModel)

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONCURRENCY = 4
MAX_IDEMPOTENCY_KEY = 255
REDACTED = "[redacted]"

FRAMES = f"{API_PREFIX}/frames"
INVENTORY = f"{API_PREFIX}/inventory"
ORDERS = f"{API_PREFIX}/orders"
ORDER = f"{API_PREFIX}/orders/{{orderId}}"
PRESCRIPTIONS = f"{API_PREFIX}/prescriptions"
WEBHOOKS = f"{API_PREFIX}/webhooks"
WEBHOOK = f"{API_PREFIX}/webhooks/{{webhookId}}"

InventoryResultCallback = Callable[[str, InventoryResponse | PartnerAPIError], None]


class OffsetPager(Generic[ModelT]):
    """Iterates over the pages of a limit/offset list and remembers its ``total``.

    Paging stops when ``total`` items were seen or a page comes back empty.
    ``total`` is the value in the newest envelope, so a caller can tell after
    the last page whether the list grew or shrank while it was read.
    """

    def __init__(self, fetch: Callable[[int], Page[ModelT]]) -> None:
        self._fetch = fetch
        self.total: int | None = None
        self.pages = 0
        self._pages = self._generate()

    def __iter__(self) -> OffsetPager[ModelT]:
        return self

    def __next__(self) -> list[ModelT]:
        return next(self._pages)

    def _generate(self) -> Iterator[list[ModelT]]:
        offset = 0
        while True:
            page = self._fetch(offset)
            self.pages += 1
            self.total = page.pagination.total

            if not page.data:
                return
            yield page.data

            offset += len(page.data)
            if offset >= page.pagination.total:
                return


StampedT = TypeVar("StampedT", Frame, Order)


class StampPager(Generic[StampedT]):
    """Iterates over a list ordered by ``(updated_at, id)`` with limit/offset, anchored on stamps.

    Each request after the first starts again from the newest ``updated_at`` read
    (the list's filter on it is inclusive) and skips, by offset, the items of
    that stamp already read, less one: the overlapping item must be the last
    one read, which proves that nothing moved at that stamp. When it is not,
    the pager reads the stamp again from its first item. So an item that
    changes or leaves the list while it is paged shifts nothing past the
    reader: a changed item comes again behind the cursor, and items read twice
    are the caller's to merge by id. Paging stops at an empty page, or when the
    envelope's ``total`` says nothing is left.

    Attributes:
        pages: requests made.
        rereads: times the items of a stamp were read again because one of
            them changed while the list was paged.
        complete: False when the items of one stamp kept changing more than
            ``MAX_REREADS`` times in a row and paging gave up; the caller must
            not treat the items read as the whole list.
    """

    MAX_REREADS = 5

    def __init__(
        self,
        fetch: Callable[[datetime | None, int], Page[StampedT]],
        *,
        since: datetime | None,
        limit: int,
    ) -> None:
        self._fetch: Callable[[datetime | None, int], Page[StampedT]] = fetch
        self._since = since
        self._limit = limit
        self.pages = 0
        self.rereads = 0
        self.complete = True
        self._pages: Iterator[list[StampedT]] = self._generate()

    def __iter__(self) -> StampPager[StampedT]:
        return self

    def __next__(self) -> list[StampedT]:
        return next(self._pages)

    def _generate(self) -> Iterator[list[StampedT]]:
        since, seen_at_stamp, anchor = self._since, 0, None
        rereads_here = 0
        while True:
            offset = max(seen_at_stamp - 1, 0)
            page = self._fetch(since, offset)
            self.pages += 1
            items = list(page.data)
            remaining = page.pagination.total - offset

            # The item before the new ones must be the last one read, still at the cursor's
            # stamp. Otherwise items at that stamp moved, so the stamp is read again.
            if anchor is not None:
                if not items or items[0].id != anchor or items[0].updated_at != since:
                    if rereads_here >= self.MAX_REREADS:
                        logger.warning("paging.gave_up stamp=%s rereads=%d", since, rereads_here)
                        self.complete = False
                        return
                    self.rereads += 1
                    rereads_here += 1
                    seen_at_stamp, anchor = 0, None
                    continue
                items, remaining = items[1:], remaining - 1

            if not items:
                return
            yield items
            if len(items) >= remaining:
                return

            last = items[-1].updated_at
            same = sum(1 for item in items if item.updated_at == last)
            if last == since:
                seen_at_stamp += len(items)
            else:
                seen_at_stamp, rereads_here = same, 0
            since, anchor = last, items[-1].id


class PartnerClient:
    """Synchronous, thread-safe client of the Partner API.

    Attributes:
        request_counts: HTTP requests sent, keyed by method and path template
            such as ``"PATCH /api/v1/partner/orders/{orderId}"``. Every attempt
            counts, including retries and the resend after a 401; calls to the
            token endpoint do not.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008  # frozen, so sharing is safe
        concurrency: int = DEFAULT_CONCURRENCY,
        page_limit: int = MAX_PAGE_LIMIT,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Create the client.

        Args:
            base_url: scheme and host of the API, such as ``https://eyekiosk.online``.
            auth: adds the bearer token, normally a ``sync.tokens.OAuthTokenAuth``.
            timeout: seconds for each of connect, read, write and pool acquisition.
            retry: retry limits for transient failures.
            concurrency: maximum inventory batches in flight in ``post_inventory_batches``.
            page_limit: ``limit`` sent with list requests, 2 to 500.
            transport: httpx transport, for tests.
            sleep: waits between retries; ``sync.retry.sleep`` when None.

        Raises:
            ValueError: ``concurrency`` or ``page_limit`` is out of range.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        # Stamp-anchored pages repeat one item read before, so a page of 1 brings nothing new.
        if not 2 <= page_limit <= MAX_PAGE_LIMIT:
            raise ValueError(f"page_limit must be 2 to {MAX_PAGE_LIMIT}, got {page_limit}")

        self.retry = retry
        self.concurrency = concurrency
        self.page_limit = page_limit
        self.request_counts: collections.Counter[str] = collections.Counter()
        self._sleep = sleep
        self._auth = auth
        self._counts_lock = threading.Lock()
        self._executor_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._http = httpx.Client(
            base_url=base_url,
            auth=auth,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=max(concurrency, 10)),
            headers={"Accept": "application/json"},
            event_hooks={"request": [self._count_request]},
        )

    # Lifecycle

    def close(self) -> None:
        """Wait for running batches, then close the thread pool, the HTTP client and the auth.

        The auth is closed when it has a ``close`` method, as OAuthTokenAuth
        does, because its token endpoint client would leak otherwise. Closing
        twice is harmless.
        """
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._http.close()
        close_auth = getattr(self._auth, "close", None)
        if callable(close_auth):
            close_auth()

    def __enter__(self) -> PartnerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Frames and inventory

    def iter_frame_pages(
        self,
        *,
        updated_since: datetime | None = None,
        brand: str | None = None,
        in_stock: bool | None = None,
    ) -> StampPager[Frame]:
        """Page through the frames that match the filters, oldest change first.

        Args:
            updated_since: only frames changed at or after this aware datetime.
            brand: exact brand, matched case-insensitively by the server.
            in_stock: only frames with (True) or without (False) stock.

        Yields:
            One list of frames per page, to the end of the list. A frame that
            changes while the list is paged comes again on a later page.

        Raises:
            PartnerAPIError: a page request failed after retries.
        """
        params: dict[str, str] = {}
        if brand is not None:
            params["brand"] = brand
        if in_stock is not None:
            params["in_stock"] = "true" if in_stock else "false"
        return self._iter_stamped(FRAMES, params, Frame, "updated_since", updated_since)

    def iter_frames(
        self,
        *,
        updated_since: datetime | None = None,
        brand: str | None = None,
        in_stock: bool | None = None,
    ) -> Iterator[Frame]:
        """Iterate over the frames of ``iter_frame_pages`` one by one."""
        for page in self.iter_frame_pages(
            updated_since=updated_since, brand=brand, in_stock=in_stock
        ):
            yield from page

    def post_inventory(
        self, updates: Sequence[InventoryUpdate], *, idempotency_key: str
    ) -> InventoryResponse:
        """Send one inventory batch.

        Retrying is safe because the Idempotency-Key makes the server apply a
        batch once and replay its stored response for a repeat.

        Args:
            updates: 1 to 100 updates.
            idempotency_key: 1 to 255 characters naming this batch and its content.

        Returns:
            One result per update, in request order.

        Raises:
            ValueError: no updates, more than 100, or an invalid key.
            PartnerAPIError: the request failed after retries.
        """
        if not updates:
            raise ValueError("an inventory batch needs at least one update")
        if len(updates) > MAX_INVENTORY_BATCH:
            raise ValueError(
                f"an inventory batch may contain at most {MAX_INVENTORY_BATCH} updates, "
                f"got {len(updates)}; split it"
            )
        if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ValueError(f"idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")

        body = InventoryBatch(updates=list(updates)).model_dump(mode="json", exclude_none=True)
        response = self._request(
            "POST", INVENTORY, json=body, headers={"Idempotency-Key": idempotency_key}
        )
        return self._parse(response, InventoryResponse, "POST", INVENTORY)

    def post_inventory_batches(
        self,
        batches: Sequence[tuple[str, Sequence[InventoryUpdate]]],
        *,
        on_result: InventoryResultCallback,
    ) -> None:
        """Send inventory batches, up to ``concurrency`` at once.

        ``on_result`` runs in the calling thread, one batch at a time in order
        of completion, so it needs no locking. A batch that fails with a
        PartnerAPIError is reported through ``on_result`` and the others go on.
        Any other exception, such as a rejected refresh token, cancels the
        batches not yet started, reports the ones still running, and is then raised.

        Args:
            batches: pairs of idempotency key and 1 to 100 updates; keys must be unique.
            on_result: called with the key and either the response or the error.

        Raises:
            ValueError: a repeated key or a batch of the wrong size, before anything is sent.
            AuthError: the token could not be used or refreshed.
        """
        keys = [key for key, _ in batches]
        if len(set(keys)) != len(keys):
            raise ValueError("idempotency keys of the batches must be unique")
        for key, updates in batches:
            if not 1 <= len(updates) <= MAX_INVENTORY_BATCH:
                raise ValueError(
                    f"batch {key!r} has {len(updates)} updates; "
                    f"each batch needs 1 to {MAX_INVENTORY_BATCH}"
                )

        executor = self._get_executor()
        futures: dict[Future[InventoryResponse], str] = {
            executor.submit(self.post_inventory, updates, idempotency_key=key): key
            for key, updates in batches
        }
        fatal: BaseException | None = None

        for future in as_completed(futures):
            key = futures[future]
            if future.cancelled():
                continue
            error = future.exception()
            if error is None:
                on_result(key, future.result())
            elif isinstance(error, PartnerAPIError):
                on_result(key, error)
            elif fatal is None:
                fatal = error
                for pending in futures:
                    pending.cancel()

        if fatal is not None:
            raise fatal

    # Orders and prescriptions

    def iter_order_pages(
        self, *, since: datetime | None = None, status: str | None = None
    ) -> StampPager[Order]:
        """Page through the orders created or changed since ``since``, oldest change first.

        Args:
            since: only orders whose ``updated_at`` is at or after this aware datetime.
            status: only orders with this status.

        Yields:
            One list of orders per page, to the end of the list. An order that
            changes while the list is paged comes again on a later page.

        Raises:
            PartnerAPIError: a page request failed after retries.
        """
        params: dict[str, str] = {}
        if status is not None:
            params["status"] = status
        return self._iter_stamped(ORDERS, params, Order, "since", since)

    def iter_orders(
        self, *, since: datetime | None = None, status: str | None = None
    ) -> Iterator[Order]:
        """Iterate over the orders of ``iter_order_pages`` one by one."""
        for page in self.iter_order_pages(since=since, status=status):
            yield from page

    def get_order(self, order_id: str) -> Order:
        """Fetch one order with its payment details.

        Raises:
            NotFoundError: no such order for this practice.
            PartnerAPIError: the request failed after retries.
        """
        response = self._request("GET", ORDER, path_params={"orderId": order_id})
        return self._parse(response, Order, "GET", ORDER)

    def update_order_status(self, order_id: str, status: str) -> Order:
        """Change the status of an order.

        Raises:
            PartnerRequestError: 409 for a change the current status does not
                allow, 422 for an unknown status.
            NotFoundError: no such order for this practice.
        """
        response = self._request(
            "PATCH", ORDER, path_params={"orderId": order_id}, json={"status": status}
        )
        return self._parse(response, Order, "PATCH", ORDER)

    def iter_prescriptions(
        self, *, order_id: str | None = None, since: datetime | None = None
    ) -> Iterator[Prescription]:
        """Iterate over prescriptions, oldest first.

        Args:
            order_id: only the prescriptions of this order.
            since: only prescriptions created at or after this aware datetime.

        Raises:
            PartnerAPIError: a page request failed after retries.
        """
        params: dict[str, str] = {}
        if order_id is not None:
            params["order_id"] = order_id
        if since is not None:
            params["since"] = format_timestamp(since)
        for page in self._iter_pages(PRESCRIPTIONS, params, Prescription):
            yield from page

    # Webhooks

    def list_webhooks(self) -> list[Webhook]:
        """Fetch every webhook subscription of the practice."""
        return [hook for page in self._iter_pages(WEBHOOKS, {}, Webhook) for hook in page]

    def create_webhook(
        self, url: str, events: Sequence[WebhookEventType], *, enabled: bool = True
    ) -> WebhookCreated:
        """Create a webhook subscription.

        Only a 429 is retried, because after a 5xx or a lost response the
        subscription may exist already and a retry could create a second one.

        Returns:
            The subscription with its signing secret, which no later response repeats.

        Raises:
            pydantic.ValidationError: ``events`` is empty or names an unknown event.
        """
        body = WebhookCreate(url=url, events=list(events), enabled=enabled)
        response = self._request(
            "POST", WEBHOOKS, json=body.model_dump(mode="json"), retry_on=(RateLimitedError,)
        )
        return self._parse(response, WebhookCreated, "POST", WEBHOOKS)

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[WebhookEventType] | None = None,
        enabled: bool | None = None,
    ) -> Webhook:
        """Change the given fields of a webhook subscription; None leaves a field as it is.

        Raises:
            NotFoundError: no such subscription.
        """
        patch = WebhookPatch(
            url=url, events=None if events is None else list(events), enabled=enabled
        )
        response = self._request(
            "PATCH",
            WEBHOOK,
            path_params={"webhookId": webhook_id},
            json=patch.model_dump(mode="json", exclude_none=True),
        )
        return self._parse(response, Webhook, "PATCH", WEBHOOK)

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook subscription.

        Raises:
            NotFoundError: no such subscription.
        """
        self._request("DELETE", WEBHOOK, path_params={"webhookId": webhook_id})

    # Plumbing

    def _iter_stamped(
        self,
        template: str,
        params: Mapping[str, str],
        model: type[StampedT],
        since_parameter: str,
        since: datetime | None,
    ) -> StampPager[StampedT]:
        """Return a stamp-anchored pager over the list at ``template``; see ``StampPager``."""

        def fetch(cursor: datetime | None, offset: int) -> Page[StampedT]:
            query = {**params, "limit": str(self.page_limit), "offset": str(offset)}
            if cursor is not None:
                query[since_parameter] = format_timestamp(cursor)
            response = self._request("GET", template, params=query)
            return self._parse(response, Page[model], "GET", template)  # type: ignore[valid-type]

        return StampPager(fetch, since=since, limit=self.page_limit)

    def _iter_pages(
        self, template: str, params: Mapping[str, str], model: type[ModelT]
    ) -> OffsetPager[ModelT]:
        """Return a pager over the list at ``template``; see ``OffsetPager``."""

        def fetch(offset: int) -> Page[ModelT]:
            query = {**params, "limit": str(self.page_limit), "offset": str(offset)}
            response = self._request("GET", template, params=query)
            return self._parse(response, Page[model], "GET", template)  # type: ignore[valid-type]

        return OffsetPager(fetch)

    def _request(
        self,
        method: str,
        template: str,
        *,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_on: tuple[type[TransientAPIError], ...] = (TransientAPIError,),
    ) -> httpx.Response:
        """Send a request, retrying the failures in ``retry_on``, and return a 2xx response."""
        path = template
        for name, value in (path_params or {}).items():
            path = path.replace(f"{{{name}}}", quote(value, safe=""))

        def attempt() -> httpx.Response:
            return self._send_once(
                method, template, path, params=params, json=json, headers=headers
            )

        return call_with_retry(
            attempt,
            policy=self.retry,
            description=f"{method} {path}",
            sleep_fn=self._sleep,
            retry_on=retry_on,
        )

    def _send_once(
        self,
        method: str,
        template: str,
        path: str,
        *,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            path,
            params=params,
            json=json,
            headers=headers,
            extensions={"eyekiosk_endpoint": template},
        )
        started = time.monotonic()
        try:
            response = self._http.send(request)
        except httpx.TransportError as error:
            logger.info(
                "%s %s failed: %s",
                method,
                path,
                type(error).__name__,
                extra={"event": "partner_call", "method": method, "path": path, "status": None},
            )
            raise PartnerTransportError(
                f"no response from {_origin(request.url)} "
                f"({type(error).__name__}); check partner.base_url and the network",
                status=None,
                method=method,
                endpoint=path,
            ) from error

        duration = time.monotonic() - started
        logger.debug(
            "%s %s %d %.3f s",
            method,
            path,
            response.status_code,
            duration,
            extra={
                "event": "partner_call",
                "method": method,
                "path": path,
                "status": response.status_code,
                "duration": duration,
            },
        )
        self._raise_for_status(response, method, path)
        return response

    @staticmethod
    def _raise_for_status(response: httpx.Response, method: str, endpoint: str) -> None:
        """Map a non-2xx response to the matching PartnerAPIError; the one place that does it.

        Raises:
            RateLimitedError: 429, with ``retry_after`` from the Retry-After header.
            ServerError: 5xx.
            UnauthorizedError: 401.
            InsufficientScopeError: 403, with ``required_scope`` from the body.
            NotFoundError: 404.
            PartnerRequestError: any other 4xx.
            PartnerAPIError: any other status outside 2xx.
        """
        status = response.status_code
        if 200 <= status < 300:
            return

        excerpt = _safe_excerpt(response)
        detail = _error_detail(response)
        code = detail.code if detail else None
        message = f"{response.reason_phrase or 'error'}" + (f" ({code})" if code else "")
        if detail and detail.message:
            message += f": {_redact(detail.message, response.request)[:EXCERPT_CHARS]}"
        context: dict[str, Any] = {
            "status": status,
            "method": method,
            "endpoint": endpoint,
            "excerpt": excerpt,
        }

        if status == httpx.codes.TOO_MANY_REQUESTS:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                message += (
                    f" (Retry-After {retry_after:.0f} s; the client waits at most "
                    "partner.retry_max_delay_s per retry)"
                )
            raise RateLimitedError(message, retry_after=retry_after, **context)
        if status >= 500:
            raise ServerError(message, **context)
        if status == httpx.codes.UNAUTHORIZED:
            raise UnauthorizedError(message, **context)
        if status == httpx.codes.FORBIDDEN:
            scope = detail.required_scope if detail else None
            if scope:
                message += f" (missing scope {scope})"
            raise InsufficientScopeError(message, required_scope=scope, **context)
        if status == httpx.codes.NOT_FOUND:
            raise NotFoundError(message, **context)
        if 400 <= status < 500:
            raise PartnerRequestError(message, **context)
        raise PartnerAPIError(f"unexpected status: {message}", **context)

    @staticmethod
    def _parse(response: httpx.Response, model: type[ModelT], method: str, endpoint: str) -> ModelT:
        """Validate a response body against ``model``."""
        try:
            return model.model_validate_json(response.content)
        except pydantic.ValidationError as error:
            # Only field locations go into the message, because values may be patient data.
            places = ", ".join(
                ".".join(str(part) for part in item["loc"]) or "body"
                for item in error.errors(include_input=False)[:5]
            )
            raise PartnerAPIError(
                f"response does not match the contract at {places}",
                status=response.status_code,
                method=method,
                endpoint=endpoint,
            ) from None

    def _count_request(self, request: httpx.Request) -> None:
        template = request.extensions.get("eyekiosk_endpoint", request.url.path)
        with self._counts_lock:
            self.request_counts[f"{request.method} {template}"] += 1

    def _get_executor(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix="eyekiosk-inventory"
                )
            return self._executor


def _origin(url: httpx.URL) -> str:
    """Return scheme, host and port of ``url``, without user info, path or query."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def _error_detail(response: httpx.Response) -> ErrorDetail | None:
    """Return the ``error`` object of an API error body, or None when the body has none."""
    try:
        return ErrorBody.model_validate_json(response.content).error
    except (pydantic.ValidationError, ValueError):
        return None


def _safe_excerpt(response: httpx.Response) -> str:
    """Return the start of the body with the request's bearer token removed."""
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        text = repr(response.content[:EXCERPT_CHARS])
    return _redact(text[: EXCERPT_CHARS * 2], response.request)[:EXCERPT_CHARS]


def _redact(text: str, request: httpx.Request | None) -> str:
    """Replace the request's bearer token in ``text``, in case a server echoes it."""
    if request is None:
        return text
    authorization = request.headers.get("Authorization", "")
    token = authorization.partition(" ")[2].strip()
    if len(token) >= 8:
        text = text.replace(token, REDACTED)
    return text
