"""The `eyekiosk-sync sandbox` command: arguments and entry point for the CLI to wire in.

parser = subparsers.add_parser("sandbox", help="serve a local Partner API sandbox")
sandbox_cli.add_arguments(parser)
...
return sandbox_cli.run_from_args(args)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sync.sandbox.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from sync.sandbox.seeding import DEFAULT_CHANGE_SHARE, DEFAULT_SEED
from sync.sandbox.server import LOOPBACK_HOST, serve
from sync.sandbox.tokens import DEFAULT_ACCESS_TOKEN_TTL

logger = logging.getLogger("sync.sandbox.cli")

CLIENT_SECRET_ENV = "EYEKIOSK_SANDBOX_CLIENT_SECRET"  # noqa: S105 - a variable name
DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sandbox command's options to parser."""
    # Where to listen
    parser.add_argument(
        "--host",
        default=LOOPBACK_HOST,
        help=f"address to bind (default {LOOPBACK_HOST}); loopback only "
        "unless --allow-remote is given",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port to bind (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host; the sandbox has no real security",
    )

    # What to seed
    seeding = parser.add_mutually_exclusive_group()
    seeding.add_argument(
        "--seed-csv",
        type=Path,
        metavar="PATH",
        help="seed frames from a stock export in the US layout "
        "(default: the packaged sample export)",
    )
    seeding.add_argument(
        "--frames", type=int, metavar="N", help="seed N generated frames instead of a CSV"
    )
    parser.add_argument(
        "--change-share",
        type=float,
        default=DEFAULT_CHANGE_SHARE,
        help="share of CSV frames, 0 to 1, seeded with another quantity or "
        f"price than the export (default {DEFAULT_CHANGE_SHARE})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="seed of the random choices, for repeatable runs",
    )

    parser.add_argument(
        "--orders-per-minute",
        type=float,
        default=0.0,
        metavar="N",
        help="create N simulated kiosk sales per minute in the background, "
        "repeatable with --seed (default 0: none)",
    )

    # OAuth
    parser.add_argument(
        "--auto-consent",
        action="store_true",
        help="approve authorization requests without showing the consent page",
    )
    parser.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        help=f"OAuth client id to register (default {DEFAULT_CLIENT_ID})",
    )
    parser.add_argument(
        "--client-secret",
        default=None,
        help=f"OAuth client secret (default: ${CLIENT_SECRET_ENV}, else {DEFAULT_CLIENT_SECRET})",
    )
    parser.add_argument(
        "--token-ttl",
        type=int,
        default=DEFAULT_ACCESS_TOKEN_TTL,
        help=f"access token lifetime in seconds (default {DEFAULT_ACCESS_TOKEN_TTL})",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve the sandbox until interrupted; return the process exit status.

    Returns:
        0 after a clean stop, 2 when an option is invalid.
    """
    secret = args.client_secret or os.environ.get(CLIENT_SECRET_ENV) or DEFAULT_CLIENT_SECRET
    if args.seed_csv is not None and not args.seed_csv.is_file():
        print(f"error: --seed-csv {args.seed_csv} is not a file", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"Eyekiosk sandbox on http://{host}:{args.port} (client id {args.client_id})",
        file=sys.stderr,
    )
    try:
        serve(
            args.host,
            args.port,
            seed_csv=args.seed_csv,
            change_share=args.change_share,
            frames=args.frames,
            auto_consent=args.auto_consent,
            client_id=args.client_id,
            client_secret=secret,
            token_ttl=args.token_ttl,
            seed=args.seed,
            allow_remote=args.allow_remote,
            orders_per_minute=args.orders_per_minute,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
