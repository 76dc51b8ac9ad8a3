"""Pull a job's kiosk orders into its order sink, and send fulfilment statuses back.

Pull. Each pull lists ``GET /orders?since=`` from the job's checkpoint less
``overlap_s``, so orders that share the checkpoint's timestamp are read again
rather than missed. Every listed version is recorded in ``delivered_orders``
(see ``sync.order_state``) and one whose ``(id, updated_at)`` the sink already
confirmed is skipped, so a repeated listing never delivers an order twice.
The list is paged with the client's ``StampPager``, anchored on the newest
``updated_at`` read so far, so an order that changes or leaves a status
filter while the list is read shifts no other order past the reader.

Delivery. Orders go to the sink in ``(updated_at, id)`` order, in chunks of
``DELIVERY_CHUNK``, with full details and prescriptions when the sink requests
them. The checkpoint moves only after the sink confirmed a chunk, and it stops
at the ``updated_at`` of the first order that was not delivered, so the next
pull reads that order again. A crash between the sink's write and the
checkpoint makes the next pull deliver those orders again: delivery is
at-least-once from Eyekiosk and exactly-once into a sink that is idempotent
on the order id.

Statuses. A job's status source is read each cycle. A row whose status
differs from the order's last known Eyekiosk status is checked against
``sync.models.ALLOWED_TRANSITIONS`` and only then sent as ``PATCH /orders/{id}``.

Reports and logs carry order ids, timestamps and counts, never customer names
or prescription values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from adapters.base import (
    DeliveryResult,
    OrderDelivery,
    OrderSink,
    SourceContext,
    StatusSource,
)
from adapters.registry import load_adapter
from sync.client import ORDERS, PartnerClient
from sync.config import JobSettings, OrderSettings, SourceSettings, format_validation_error
from sync.errors import (
    ConfigError,
    InsufficientScopeError,
    MissingScopeError,
    NotFoundError,
    PartnerAPIError,
    SinkError,
    SyncError,
    TransientAPIError,
)
from sync.models import ALLOWED_TRANSITIONS, ORDER_STATUSES, Order, format_timestamp
from sync.order_state import (
    OrderRecord,
    format_stamp,
    load_orders,
    mark_delivered,
    record_seen,
    set_known_status,
)
from sync.state import StateStore

log = logging.getLogger("eyekiosk_sync.orders")

ORDERS_CHECKPOINT = "orders_checkpoint"
DELIVERY_CHUNK = 50
# Error messages kept in one report; the counts stay exact beyond it.
MAX_REPORTED_ERRORS = 50

PULL_SCOPES = {"orders:read": "the order pull (GET /orders)"}
PRESCRIPTION_SCOPES = {"prescriptions:read": "order prescriptions (GET /prescriptions)"}
STATUS_SCOPES = {"orders:full": "order status updates (PATCH /orders/{id})"}


class InvalidTransitionError(SyncError):
    """An order status change that the status table does not allow, or an unknown status.

    Attributes:
        order_id: the order.
        current: its status on Eyekiosk, or None when unknown.
        requested: the status asked for.
    """

    def __init__(self, order_id: str, current: str | None, requested: str) -> None:
        if requested not in ORDER_STATUSES:
            message = (
                f"order {order_id}: unknown status {requested!r}; "
                f"statuses are {', '.join(ORDER_STATUSES)}"
            )
        else:
            allowed = ", ".join(sorted(ALLOWED_TRANSITIONS.get(current or "", ()))) or "none"
            message = (
                f"order {order_id}: cannot go from {current} to {requested}; "
                f"allowed from {current}: {allowed}"
            )
        super().__init__(message)
        self.order_id = order_id
        self.current = current
        self.requested = requested


@dataclass(slots=True)
class OrdersReport:
    """Counts, ids and errors of one order pull and status push; no patient data.

    Attributes:
        job: the job's name.
        sink: the sink's description.
        since: the ``since`` sent with the listing, ISO 8601, or None for all orders.
        listings: order listings read; one per pull.
        pulled: distinct orders listed.
        delivered: orders the sink confirmed in this pull.
        duplicates_skipped: listed orders whose version the sink had confirmed before.
        failed: orders that were not delivered; the next pull tries them again.
        failed_order_ids: their ids, in delivery order.
        checkpoint: the checkpoint after the pull, ISO 8601, or None before the first.
        status_rows: rows read from the status source.
        status_updates_sent: status changes Eyekiosk accepted.
        status_updates_unchanged: rows whose status the order already had.
        status_updates_rejected: rows not sent or refused: unknown order, unknown
            status, a transition the table does not allow, or a failed request.
        errors: one message per failure, naming order ids, never patient data.
    """

    job: str
    sink: str = ""
    since: str | None = None
    listings: int = 0
    pulled: int = 0
    delivered: int = 0
    duplicates_skipped: int = 0
    failed: int = 0
    failed_order_ids: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    status_rows: int = 0
    status_updates_sent: int = 0
    status_updates_unchanged: int = 0
    status_updates_rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def add_error(self, message: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)

    @property
    def ok(self) -> bool:
        """Whether every listed order was delivered and every status row was accepted."""
        return not self.failed and not self.status_updates_rejected

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def required_scopes(orders: OrderSettings, *, prescriptions: bool) -> dict[str, str]:
    """Return the scopes an order job needs, mapped to the feature that needs each.

    Pass the result as ``needed`` to ``sync.runtime.open_client``.

    Args:
        orders: the job's order settings.
        prescriptions: whether the job's sink requests prescriptions.
    """
    needed = dict(PULL_SCOPES)
    if prescriptions:
        needed.update(PRESCRIPTION_SCOPES)
    if orders.status_source is not None:
        needed.update(STATUS_SCOPES)
    return needed


def open_sink(settings: SourceSettings, *, job: str, context: SourceContext) -> OrderSink[Any]:
    """Build the order sink that ``settings.adapter`` names.

    Raises:
        ConfigError: the alias is unknown or not a sink, or the options are invalid.
    """
    sink_class = load_adapter(settings.adapter, base=OrderSink)  # type: ignore[type-abstract]
    try:
        return sink_class.from_mapping(settings.options(), context=context)
    except ValidationError as error:
        raise ConfigError(_options_error(error, f"jobs.{job}.orders.sink", settings)) from None


def open_status_source(
    settings: SourceSettings, *, job: str, context: SourceContext
) -> StatusSource[Any]:
    """Build the status source that ``settings.adapter`` names.

    Raises:
        ConfigError: the alias is unknown or not a status source, or the options are invalid.
    """
    source_class = load_adapter(settings.adapter, base=StatusSource)  # type: ignore[type-abstract]
    try:
        return source_class.from_mapping(settings.options(), context=context)
    except ValidationError as error:
        where = f"jobs.{job}.orders.status_source"
        raise ConfigError(_options_error(error, where, settings)) from None


def _options_error(error: ValidationError, where: str, settings: SourceSettings) -> str:
    problems = format_validation_error(error).splitlines()[1:]
    details = "; ".join(f"{where}.{line.strip()}" for line in problems)
    return f"invalid {settings.adapter} options: {details}"


def order_settings(job: JobSettings) -> OrderSettings:
    """Return the job's ``[jobs.orders]`` table.

    Raises:
        ConfigError: the job has none.
    """
    if job.orders is None:
        raise ConfigError(
            f"job {job.name} has no [jobs.orders] table; add one with a sink to pull orders"
        )
    return job.orders


def read_checkpoint(store: StateStore, job: str) -> datetime | None:
    """Return the job's order checkpoint, or None before the first pull."""
    value = store.get_bookmark(job, ORDERS_CHECKPOINT)
    return datetime.fromisoformat(value) if value else None


# The pull


def sync_orders(
    job: JobSettings,
    *,
    client: PartnerClient,
    store: StateStore,
    context: SourceContext,
    since: datetime | None = None,
    now: Callable[[], datetime] | None = None,
) -> OrdersReport:
    """Pull the job's new and changed orders into its sink, then send its status updates.

    Args:
        job: the job; ``job.orders`` must be set.
        client: the Partner API client.
        store: the open state store.
        context: folders that the sink and the status source resolve paths against.
        since: list orders changed at or after this aware datetime instead of the
            checkpoint less ``overlap_s``.
        now: clock for ``delivered_at``; ``datetime.now(UTC)`` by default.

    Returns:
        Counts, ids and error messages of the pull and of the status updates.

    Raises:
        ConfigError: the job has no order settings, or the sink's options are invalid.
        MissingScopeError: the grant lacks ``orders:read``, ``prescriptions:read``
            (sink with prescriptions on) or ``orders:full`` (status source).
        PartnerAPIError: the order list could not be read after retries.
        StateError: the state database failed.
    """
    settings = order_settings(job)
    clock = now or (lambda: datetime.now(UTC))
    report = OrdersReport(job=job.name)

    sink = open_sink(settings.sink, job=job.name, context=context)
    try:
        report.sink = sink.describe()
        _pull(job.name, settings, sink, client=client, store=store, since=since,
              clock=clock, report=report)  # fmt: skip
    finally:
        sink.close()

    if settings.status_source is not None:
        source = open_status_source(settings.status_source, job=job.name, context=context)
        try:
            push_statuses(job.name, source, client=client, store=store, report=report)
        finally:
            source.close()

    log.info(
        "orders.finished job=%s pulled=%d delivered=%d duplicates=%d failed=%d "
        "status_sent=%d status_rejected=%d checkpoint=%s",
        job.name,
        report.pulled,
        report.delivered,
        report.duplicates_skipped,
        report.failed,
        report.status_updates_sent,
        report.status_updates_rejected,
        report.checkpoint,
    )
    return report


def _pull(
    job: str,
    settings: OrderSettings,
    sink: OrderSink[Any],
    *,
    client: PartnerClient,
    store: StateStore,
    since: datetime | None,
    clock: Callable[[], datetime],
    report: OrdersReport,
) -> None:
    # Work out where to start.
    checkpoint = read_checkpoint(store, job)
    if since is None and checkpoint is not None:
        since = checkpoint - timedelta(seconds=settings.overlap_s)
    report.since = None if since is None else format_timestamp(since)
    report.checkpoint = None if checkpoint is None else format_timestamp(checkpoint)

    # List every order changed since then and record the versions seen.
    listed = _list_orders(client, since=since, statuses=settings.statuses, report=report)
    record_seen(store, job, listed)
    known = load_orders(store, job, [order.id for order in listed])
    pending = [order for order in listed if not _already_delivered(order, known.get(order.id))]
    report.pulled = len(listed)
    report.duplicates_skipped = len(listed) - len(pending)
    log.info(
        "orders.listed job=%s since=%s listed=%d new=%d listings=%d",
        job, report.since, len(listed), len(pending), report.listings,
    )  # fmt: skip

    # Deliver in chunks; the checkpoint follows the confirmed prefix.
    first_failed: Order | None = None
    for start in range(0, len(pending), DELIVERY_CHUNK):
        chunk = pending[start : start + DELIVERY_CHUNK]
        failed, sink_down = _deliver_chunk(job, chunk, sink, client=client, store=store,
                                           clock=clock, report=report)  # fmt: skip
        if failed is not None and first_failed is None:
            first_failed = failed
        if sink_down:
            _skip_rest(pending[start + len(chunk) :], sink, report)
            break
        if first_failed is None:
            _save_checkpoint(store, job, chunk[-1].updated_at, report)

    # A pull with nothing new still moves the checkpoint past the duplicates it read.
    if first_failed is not None:
        _save_checkpoint(store, job, first_failed.updated_at, report)
    elif listed:
        _save_checkpoint(store, job, listed[-1].updated_at, report)
    if first_failed is not None:
        log.warning(
            "orders.checkpoint_held job=%s order_id=%s failed=%d; the next pull retries from it",
            job, first_failed.id, report.failed,
        )  # fmt: skip


def _skip_rest(orders: Sequence[Order], sink: OrderSink[Any], report: OrdersReport) -> None:
    """Count the orders left after the sink failed as a whole; they wait for the next pull."""
    if not orders:
        return
    report.failed += len(orders)
    report.failed_order_ids.extend(order.id for order in orders)
    report.add_error(f"{len(orders)} more order(s) not sent because {sink.describe()} failed")


def _already_delivered(order: Order, record: OrderRecord | None) -> bool:
    if record is None or record.delivered_updated_at is None:
        return False
    return record.delivered_updated_at >= format_stamp(order.updated_at)


def _save_checkpoint(store: StateStore, job: str, value: datetime, report: OrdersReport) -> None:
    store.set_bookmark(job, ORDERS_CHECKPOINT, value.astimezone(UTC).isoformat())
    report.checkpoint = format_timestamp(value)


def preview_orders(job: JobSettings, *, client: PartnerClient, store: StateStore) -> list[Order]:
    """List the orders the next pull would record for the first time, delivering nothing.

    ``sync --dry-run`` nets these too, so its plan matches what a real cycle,
    which pulls them first, would send.
    """
    settings = order_settings(job)
    checkpoint = read_checkpoint(store, job.name)
    since = None if checkpoint is None else checkpoint - timedelta(seconds=settings.overlap_s)
    report = OrdersReport(job=job.name)
    listed = _list_orders(client, since=since, statuses=settings.statuses, report=report)
    # Orders already recorded net through the state database; only new ones are added.
    known = load_orders(store, job.name, [order.id for order in listed])
    return [order for order in listed if order.id not in known]


def _list_orders(
    client: PartnerClient,
    *,
    since: datetime | None,
    statuses: Sequence[str],
    report: OrdersReport,
) -> list[Order]:
    """List orders changed since ``since`` in the wanted statuses, newest version of each.

    Returns:
        One order per id, sorted by ``(updated_at, id)``.
    """
    # One listing without a status filter, filtered here: an order that moved
    # between two filtered listings could fall behind the checkpoint unseen.
    newest: dict[str, Order] = {}
    report.listings += 1
    pages = client.iter_order_pages(since=since)
    for page in pages:
        for order in page:
            held = newest.get(order.id)
            if held is None or order.updated_at >= held.updated_at:
                newest[order.id] = order
    if not pages.complete:
        raise TransientAPIError(
            "the order list kept changing while it was read; the next pull tries again",
            status=None,
            method="GET",
            endpoint=ORDERS,
        )
    wanted = [order for order in newest.values() if not statuses or order.status in statuses]
    return sorted(wanted, key=lambda order: (order.updated_at, order.id))


# One chunk of deliveries


def _deliver_chunk(
    job: str,
    chunk: Sequence[Order],
    sink: OrderSink[Any],
    *,
    client: PartnerClient,
    store: StateStore,
    clock: Callable[[], datetime],
    report: OrdersReport,
) -> tuple[Order | None, bool]:
    """Fetch, deliver and record one chunk.

    Returns:
        The chunk's first undelivered order, if any, and whether the sink
        failed as a whole (SinkError), so that no further chunk is sent.
    """
    deliveries: list[OrderDelivery] = []
    versions: dict[str, datetime] = {}
    results: dict[str, DeliveryResult] = {}

    # Fetch what the sink asked for; an order that cannot be fetched fails alone.
    for order in chunk:
        try:
            delivery, version = _prepare(order, sink, client)
        except PartnerAPIError as error:
            results[order.id] = DeliveryResult(order.id, False, _fetch_error(order.id, error))
            continue
        deliveries.append(delivery)
        versions[order.id] = version

    # Hand the chunk to the sink.
    sink_down = False
    if deliveries:
        returned, sink_down = _call_sink(sink, deliveries)
        results.update((result.order_id, result) for result in returned)

    # Record the confirmed versions, then count.
    confirmed = [
        (order.id, versions[order.id])
        for order in chunk
        if order.id in versions and results[order.id].delivered
    ]
    mark_delivered(store, job, confirmed, at=clock())
    report.delivered += len(confirmed)
    first_failed = None
    for order in chunk:
        result = results[order.id]
        if result.delivered:
            continue
        first_failed = first_failed or order
        report.failed += 1
        report.failed_order_ids.append(order.id)
        report.add_error(f"order {order.id}: {result.error or 'not delivered'}")
        log.warning("orders.delivery_failed job=%s order_id=%s error=%s", job, order.id,
                    result.error)  # fmt: skip
    return first_failed, sink_down


def _prepare(
    order: Order, sink: OrderSink[Any], client: PartnerClient
) -> tuple[OrderDelivery, datetime]:
    """Build one delivery with the details and prescriptions the sink asked for.

    Returns:
        The delivery and the ``updated_at`` of the version it carries.

    Raises:
        MissingScopeError: the grant lacks ``prescriptions:read``.
        PartnerAPIError: the order or its prescriptions could not be fetched.
    """
    try:
        full = client.get_order(order.id) if sink.wants_details else order
    except InsufficientScopeError as error:
        raise _missing_scope(error, PULL_SCOPES) from None
    prescriptions: list[dict[str, Any]] = []
    if sink.wants_prescriptions and full.has_prescription:
        try:
            found = client.iter_prescriptions(order_id=order.id)
            prescriptions = [item.model_dump(mode="json") for item in found]
        except InsufficientScopeError as error:
            raise _missing_scope(error, PRESCRIPTION_SCOPES) from None
    delivery = OrderDelivery(order=full.model_dump(mode="json"), prescriptions=prescriptions)
    return delivery, full.updated_at


def _missing_scope(error: InsufficientScopeError, features: dict[str, str]) -> MissingScopeError:
    """Turn a 403 into the error that names the scope and the feature that needs it."""
    default = next(iter(features))
    scope = error.required_scope or default
    return MissingScopeError(scope, feature=features.get(scope, features[default]))


def _fetch_error(order_id: str, error: PartnerAPIError) -> str:
    if isinstance(error, NotFoundError):
        return f"GET returned 404 for the listed order {order_id}; the next pull tries it again"
    return f"fetching the order failed: {error}"


def _call_sink(
    sink: OrderSink[Any], deliveries: Sequence[OrderDelivery]
) -> tuple[list[DeliveryResult], bool]:
    """Deliver a chunk and check the sink's results.

    Returns:
        One result per delivery, and whether the sink raised SinkError, which
        fails every order of the call.
    """
    ids = [delivery.order_id for delivery in deliveries]
    try:
        results = sink.deliver(deliveries)
    except SinkError as error:
        log.error("orders.sink_failed sink=%s orders=%d error=%s", sink.describe(), len(ids), error)
        return [DeliveryResult(order_id, False, str(error)) for order_id in ids], True
    returned = [result.order_id for result in results]
    if returned != ids:
        raise SinkError(
            f"returned results for {len(returned)} orders in another order than the "
            f"{len(ids)} delivered; the sink breaks the OrderSink contract",
            sink=sink.describe(),
        )
    return list(results), False


# Status updates


def change_status(
    client: PartnerClient, order_id: str, status: str, *, current: str | None
) -> Order | None:
    """Send a status change after checking it against the transition table.

    Args:
        client: the Partner API client (scope ``orders:full``).
        order_id: the order.
        status: the status to set.
        current: the order's status on Eyekiosk.

    Returns:
        The updated order, or None when the order already has ``status`` and
        nothing was sent.

    Raises:
        InvalidTransitionError: ``status`` is unknown or not allowed from ``current``.
        MissingScopeError: the grant lacks ``orders:full``.
        PartnerAPIError: Eyekiosk refused the change (409 when its status differs
            from ``current``) or the request failed after retries.
    """
    if status not in ORDER_STATUSES or current not in ALLOWED_TRANSITIONS:
        raise InvalidTransitionError(order_id, current, status)
    if status == current:
        return None
    if status not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransitionError(order_id, current, status)
    try:
        return client.update_order_status(order_id, status)
    except InsufficientScopeError as error:
        raise _missing_scope(error, STATUS_SCOPES) from None


def push_statuses(
    job: str,
    source: StatusSource[Any],
    *,
    client: PartnerClient,
    store: StateStore,
    report: OrdersReport,
) -> None:
    """Read the status source and send each allowed change; count and report the rest.

    The comparison uses the status stored in ``delivered_orders``. An order the
    job never pulled, or whose status is unknown after a refused change, is
    fetched first.

    Raises:
        SourceError: the status source cannot be read at all.
        MissingScopeError: the grant lacks ``orders:full``.
    """
    result = source.read_statuses()
    report.status_rows = len(result.rows)
    for rejection in result.rejections:
        report.status_updates_rejected += 1
        report.add_error(f"status source {rejection.location}: {rejection.reason}")

    rows = list(zip(result.rows["order_id"], result.rows["status"], strict=True))
    known = load_orders(store, job, [str(order_id) for order_id, _ in rows])
    for order_id, status in _rows(rows):
        record = known.get(order_id)
        current = record.status if record is not None else None
        try:
            if current is None:
                current = client.get_order(order_id).status
                set_known_status(store, order_id, current, job=job)
            if change_status(client, order_id, status, current=current) is None:
                report.status_updates_unchanged += 1
                continue
        except (InvalidTransitionError, PartnerAPIError) as error:
            _reject_status(job, order_id, error, store=store, report=report)
            continue
        set_known_status(store, order_id, status, job=job)
        report.status_updates_sent += 1
        log.info("orders.status_sent job=%s order_id=%s from=%s to=%s", job, order_id, current,
                 status)  # fmt: skip

    if report.status_updates_rejected:
        log.warning(
            "orders.status_rejected job=%s rejected=%d sent=%d; see the report's errors",
            job, report.status_updates_rejected, report.status_updates_sent,
        )  # fmt: skip


def _rows(rows: Sequence[tuple[Any, Any]]) -> Iterator[tuple[str, str]]:
    for order_id, status in rows:
        yield str(order_id), str(status)


def _reject_status(
    job: str, order_id: str, error: SyncError, *, store: StateStore, report: OrdersReport
) -> None:
    report.status_updates_rejected += 1
    report.add_error(str(error))
    # A 409 means Eyekiosk's status is not the one stored; fetch it again next cycle.
    if isinstance(error, PartnerAPIError) and error.status == 409:
        set_known_status(store, order_id, None, job=job)
    log.debug("orders.status_rejected job=%s order_id=%s error=%s", job, order_id, error)


__all__ = [
    "DELIVERY_CHUNK",
    "ORDERS_CHECKPOINT",
    "InvalidTransitionError",
    "OrdersReport",
    "change_status",
    "open_sink",
    "open_status_source",
    "order_settings",
    "preview_orders",
    "push_statuses",
    "read_checkpoint",
    "required_scopes",
    "sync_orders",
]
