"""The ``eyekiosk-sync orders`` commands: pull kiosk orders, list them, set a status.

Wire them into the main parser with::

    orders = commands.add_parser("orders", help="pull kiosk orders, list them, set a status")
    add_arguments(orders)

Each action sets ``handler`` to a function that takes ``(args, settings)`` and
returns the exit code: 0 success, 1 failure, 3 some orders or status rows
failed. ``python -m sync.orders_cli`` runs the same commands on their own.
Output holds order ids, statuses, timestamps and counts, never patient data.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from adapters.base import SourceContext
from sync.config import JobSettings, Settings
from sync.errors import ConfigError
from sync.order_state import list_orders, set_known_status
from sync.orders import (
    PULL_SCOPES,
    STATUS_SCOPES,
    InvalidTransitionError,
    OrdersReport,
    change_status,
    open_sink,
    order_settings,
    required_scopes,
    sync_orders,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_PARTIAL = 3
DEFAULT_LIST_LIMIT = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pull``, ``list`` and ``set-status`` actions to the ``orders`` parser."""
    actions = parser.add_subparsers(dest="orders_command", required=True, metavar="ACTION")

    pull = actions.add_parser("pull", help="pull new and changed kiosk orders into the job's sink")
    pull.add_argument("--job", help="job name; needed when several jobs are configured")
    pull.add_argument(
        "--since",
        type=_timestamp,
        metavar="ISO8601",
        help="pull orders changed at or after this time (with a UTC offset) "
        "instead of from the stored checkpoint",
    )
    pull.add_argument("--json", action="store_true", help="print the report as one JSON object")
    pull.set_defaults(handler=cmd_pull)

    listing = actions.add_parser("list", help="show pulled orders: ids, statuses, timestamps")
    listing.add_argument("--job", help="only this job's orders (default: every job)")
    listing.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIST_LIMIT,
        help=f"orders to show, most recently changed first (default {DEFAULT_LIST_LIMIT})",
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=cmd_list)

    set_status = actions.add_parser(
        "set-status", help="change an order's status on Eyekiosk (scope orders:full)"
    )
    set_status.add_argument("order_id", metavar="ORDER_ID")
    set_status.add_argument("status", metavar="STATUS", help="pending, in_progress, completed, ...")
    set_status.set_defaults(handler=cmd_set_status)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset; add Z or +HH:MM")
    return value


def _context(settings: Settings, job: JobSettings) -> SourceContext:
    config_dir = settings.config_path.parent if settings.config_path else Path.cwd()
    return SourceContext(job=job.name, config_dir=config_dir, state_dir=settings.state.dir)


# Handlers


def cmd_pull(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run ``orders pull``: one pull of the job's orders and its status updates."""
    assert settings is not None
    from sync.runtime import open_client, state_store

    job = settings.job(args.job)
    orders = order_settings(job)
    context = _context(settings, job)
    sink = open_sink(orders.sink, job=job.name, context=context)
    try:
        needed = required_scopes(orders, prescriptions=sink.wants_prescriptions)
    finally:
        sink.close()

    with state_store(settings) as store, open_client(settings, needed=needed) as client:
        report = sync_orders(job, client=client, store=store, context=context, since=args.since)
    _print_pull(report, as_json=args.json)
    return EXIT_OK if report.ok else EXIT_PARTIAL


def _print_pull(report: OrdersReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    print(
        f"job {report.job}: {report.pulled} order(s) listed since {report.since or 'the start'}, "
        f"{report.delivered} delivered, {report.duplicates_skipped} already delivered, "
        f"{report.failed} failed; checkpoint {report.checkpoint or 'not set'}"
    )
    print(f"  sink: {report.sink}")
    if report.status_rows or report.status_updates_rejected:
        print(
            f"  statuses: {report.status_updates_sent} sent, "
            f"{report.status_updates_unchanged} unchanged, "
            f"{report.status_updates_rejected} rejected"
        )
    for message in report.errors:
        print(f"  error: {message}")


def cmd_list(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run ``orders list``: pulled orders from the state database, newest change first."""
    assert settings is not None
    from sync.runtime import state_store

    if args.limit < 1:
        raise ConfigError(f"--limit must be 1 or more, got {args.limit}")
    with state_store(settings) as store:
        records = list_orders(store, args.job, limit=args.limit)
    rows = [
        {
            "job": record.job,
            "order_id": record.order_id,
            "status": record.status,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
            "delivered_updated_at": record.delivered_updated_at,
            "delivered_at": record.delivered_at,
            "items": record.item_count,
            "units": record.units,
            "has_prescription": record.has_prescription,
        }
        for record in records
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no orders pulled yet")
    for row in rows:
        delivered = row["delivered_at"] or "not delivered"
        print(
            f"{row['order_id']:<16} {row['job']:<16} {row['status'] or '-':<12} "
            f"updated {row['updated_at']} delivered {delivered} units={row['units']}"
        )
    return EXIT_OK


def cmd_set_status(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run ``orders set-status``: check the transition, then PATCH the order."""
    assert settings is not None
    from sync.runtime import open_client, state_store

    needed = {**PULL_SCOPES, **STATUS_SCOPES}
    with state_store(settings) as store, open_client(settings, needed=needed) as client:
        current = client.get_order(args.order_id).status
        try:
            updated = change_status(client, args.order_id, args.status, current=current)
        except InvalidTransitionError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_FAILED
        set_known_status(store, args.order_id, args.status)
    if updated is None:
        print(f"order {args.order_id} is already {args.status}; nothing sent")
    else:
        print(f"order {args.order_id}: {current} -> {updated.status}")
    return EXIT_OK


# Standalone entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``eyekiosk-sync [global options] orders ARGS`` and return its exit code."""
    from sync.cli import main_for

    return main_for("orders", argv)


if __name__ == "__main__":
    raise SystemExit(main())
