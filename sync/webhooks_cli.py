"""The ``eyekiosk-sync webhooks`` commands: list, create, enable, disable and delete subscriptions.

Wire them into the main parser with::

    webhooks = commands.add_parser("webhooks", help="manage Eyekiosk webhook subscriptions")
    add_arguments(webhooks)

Each action sets ``handler`` to a function that takes ``(args, settings)`` and
returns the exit code: 0 success, 1 failure, 2 invalid usage.
``python -m sync.webhooks_cli`` runs the same commands on their own.

``list`` needs the scope ``webhooks:read``; the other actions need
``webhooks:write``. The signing secret that ``create`` receives goes into the
secrets file in the state folder (mode 0600), and no command ever prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from sync.config import Settings
from sync.errors import ConfigError, NotFoundError, StateError, SyncError
from sync.models import WEBHOOK_EVENTS, Webhook, WebhookEventType, format_timestamp
from sync.webhooks import WebhookSecrets, is_loopback_host, secrets_path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2

READ_SCOPES = {"webhooks:read": "webhooks list (GET /webhooks)"}
WRITE_SCOPES = {"webhooks:write": "webhook management (POST, PATCH and DELETE /webhooks)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``list``, ``create``, ``enable``, ``disable`` and ``delete`` actions."""
    actions = parser.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")

    listing = actions.add_parser(
        "list", help="show subscriptions, their delivery status and whether a secret is stored"
    )
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    listing.set_defaults(handler=cmd_list)

    create = actions.add_parser(
        "create", help="subscribe a URL to events and store the signing secret"
    )
    create.add_argument(
        "--url",
        required=True,
        help="public https:// URL of the receiver behind your reverse proxy, "
        "e.g. https://practice.example/eyekiosk/webhooks",
    )
    create.add_argument(
        "--event",
        dest="events",
        action="append",
        choices=WEBHOOK_EVENTS,
        metavar="EVENT",
        help="event to subscribe to; repeat for several "
        f"(default: all of {', '.join(WEBHOOK_EVENTS)})",
    )
    create.set_defaults(handler=cmd_create)

    for name, summary in (
        ("enable", "resume deliveries to a subscription"),
        ("disable", "pause deliveries to a subscription"),
    ):
        toggle = actions.add_parser(name, help=summary)
        toggle.add_argument("webhook_id", metavar="ID", help="subscription id, e.g. wh_00000001")
        toggle.set_defaults(handler=cmd_set_enabled, enabled=name == "enable")

    delete = actions.add_parser("delete", help="delete a subscription and its stored secret")
    delete.add_argument("webhook_id", metavar="ID", help="subscription id, e.g. wh_00000001")
    delete.set_defaults(handler=cmd_delete)


def validate_webhook_url(url: str) -> None:
    """Raise ConfigError unless Eyekiosk can deliver to the URL.

    Eyekiosk delivers over HTTPS only. Plain ``http://`` is accepted for
    loopback hosts, which only the local sandbox delivers to.

    Raises:
        ConfigError: the URL is not absolute, or is http:// to a host other than loopback.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--url {url!r} must be an absolute https:// URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"--url {url!r}: Eyekiosk delivers webhooks over HTTPS only; give the https:// "
            "URL of your reverse proxy in front of the receiver"
        )


# Handlers


def cmd_list(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run ``webhooks list``: the subscriptions, and which of them have a stored secret."""
    assert settings is not None
    from sync.runtime import open_client

    stored = WebhookSecrets(secrets_path(settings)).load()
    with open_client(settings, needed=READ_SCOPES) as client:
        hooks = client.list_webhooks()
    rows = [_row(hook, secret_stored=hook.id in stored) for hook in hooks]
    orphans = sorted(set(stored) - {hook.id for hook in hooks})

    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no webhook subscriptions")
    for row in rows:
        status = row["delivery_status"]
        print(
            f"{row['id']:<14} {'enabled' if row['enabled'] else 'disabled':<8} "
            f"secret {'stored' if row['secret_stored'] else 'missing':<7} {row['url']}"
        )
        print(f"    events: {', '.join(row['events'])}")
        print(
            f"    last delivery: {status['last_delivery_at'] or 'never'}, "
            f"status {status['last_status_code'] or '-'}, "
            f"{status['failed_deliveries']} failed"
        )
    if orphans:
        print(
            f"stored secrets of subscriptions that no longer exist: {', '.join(orphans)}; "
            f"remove them with `eyekiosk-sync webhooks delete ID`"
        )
    return EXIT_OK


def _row(hook: Webhook, *, secret_stored: bool) -> dict[str, Any]:
    status = hook.delivery_status
    return {
        "id": hook.id,
        "url": hook.url,
        "events": list(hook.events),
        "enabled": hook.enabled,
        "created_at": format_timestamp(hook.created_at),
        "delivery_status": {
            "last_delivery_at": format_timestamp(status.last_delivery_at)
            if status.last_delivery_at
            else None,
            "last_status_code": status.last_status_code,
            "failed_deliveries": status.failed_deliveries,
        },
        "secret_stored": secret_stored,
    }


def cmd_create(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run ``webhooks create``: create the subscription and store its secret.

    When the secret cannot be stored, the subscription is deleted again,
    because Eyekiosk never shows its secret a second time.
    """
    assert settings is not None
    from sync.runtime import ensure_state_dir, open_client

    validate_webhook_url(args.url)
    events = cast(list[WebhookEventType], list(dict.fromkeys(args.events or WEBHOOK_EVENTS)))
    ensure_state_dir(settings)
    store = WebhookSecrets(secrets_path(settings))
    store.load()  # Fail on a broken secrets file before anything is created.

    with open_client(settings, needed=WRITE_SCOPES) as client:
        created = client.create_webhook(args.url, events)
        try:
            store.add(created.id, created.secret)
        except StateError:
            try:
                client.delete_webhook(created.id)
            except SyncError:
                print(
                    f"error: webhook {created.id} was created but could not be deleted "
                    f"again; delete it with `eyekiosk-sync webhooks delete {created.id}`",
                    file=sys.stderr,
                )
            raise

    print(f"created webhook {created.id} for {created.url}")
    print(f"  events: {', '.join(created.events)}")
    print(
        f"  its signing secret is stored in {store.path}; a running receiver "
        "accepts it without a restart"
    )
    return EXIT_OK


def cmd_set_enabled(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run ``webhooks enable`` or ``webhooks disable``."""
    assert settings is not None
    from sync.runtime import open_client

    with open_client(settings, needed=WRITE_SCOPES) as client:
        hook = client.update_webhook(args.webhook_id, enabled=args.enabled)
    print(f"webhook {hook.id} is {'enabled' if hook.enabled else 'disabled'}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, settings: Settings | None) -> int:
    """Run ``webhooks delete``: delete the subscription, then its stored secret.

    A subscription that Eyekiosk no longer has still loses its stored secret.
    """
    assert settings is not None
    from sync.runtime import open_client

    store = WebhookSecrets(secrets_path(settings))
    with open_client(settings, needed=WRITE_SCOPES) as client:
        try:
            client.delete_webhook(args.webhook_id)
        except NotFoundError:
            if not store.remove(args.webhook_id):
                raise
            print(
                f"webhook {args.webhook_id} does not exist on Eyekiosk; "
                "its stored secret was removed"
            )
            return EXIT_OK
    removed = store.remove(args.webhook_id)
    print(
        f"deleted webhook {args.webhook_id}"
        + ("; its stored secret was removed" if removed else "; no secret was stored for it")
    )
    return EXIT_OK


# Standalone entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``eyekiosk-sync [global options] webhooks ARGS`` and return its exit code."""
    from sync.cli import main_for

    return main_for("webhooks", argv)


if __name__ == "__main__":
    raise SystemExit(main())
