"""The ``eyekiosk-sync`` command line.

Exit codes: 0 success, 1 a cycle failed or was aborted, 2 invalid configuration
or usage, 3 a cycle finished but some batches failed or updates were rejected,
4 not authorized (no stored grant, or a scope is missing).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync import __version__
from sync.config import JobSettings, Settings, find_config, load_settings
from sync.errors import AuthError, ConfigError, SyncError
from sync.logs import configure_logging
from sync.models import format_timestamp
from sync.report import RunReport, format_report

log = logging.getLogger("eyekiosk_sync.cli")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_PARTIAL = 3
EXIT_AUTH = 4
OUTCOME_EXIT = {"success": EXIT_OK, "partial": EXIT_PARTIAL}
GLOBAL_OPTIONS = ("--config", "--log-level")
EXIT_CODES = """exit codes:
  0  success
  1  a cycle failed, was aborted by the source guard, or was stopped
  2  invalid configuration or usage
  3  the cycle finished, but some batches failed or updates were rejected
  4  not authorized: run `auth login`, or add the missing scope and log in again"""


class _HelpFormatter(argparse.HelpFormatter):
    """Wrap descriptions as usual but keep the exit-code table's line breaks."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == EXIT_CODES:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="eyekiosk-sync",
        description="Keep a practice's frame inventory in sync with the Eyekiosk Partner API.",
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default: $EYEKIOSK_SYNC_CONFIG, ./config.toml, "
        "/etc/eyekiosk-sync/config.toml)",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level; overrides [logging] level",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = _command(
        commands,
        "sync",
        "run one cycle of a job now",
        "Read the job's sources, refresh the frame mirror, and post the quantities and "
        "prices that differ. --job is needed when the config has several jobs.",
    )
    sync.add_argument("--job", help="job name; needed when several jobs are configured")
    sync.add_argument(
        "--dry-run", action="store_true", help="compare and print the plan; post nothing"
    )
    sync.add_argument("--json", action="store_true", help="print the run report as one JSON object")
    sync.add_argument(
        "--force",
        action="store_true",
        help="post even when the source is empty or shrank more than max_drop_share",
    )
    sync.set_defaults(handler=_cmd_sync)

    run = _command(
        commands,
        "run",
        "run every job on its schedule until SIGTERM",
        "Run each [[jobs]] table on its cron or interval trigger, one run per job at a time. "
        "Interval jobs also run once at start. SIGTERM or SIGINT lets the batches in flight "
        "finish, commits state and exits 0.",
    )
    run.set_defaults(handler=_cmd_run)

    check = _command(
        commands,
        "check-config",
        "validate the config file and each source",
        "Validate the TOML file, environment overrides, the client secret and each "
        "source's options, and print every problem with its key path.",
    )
    check.set_defaults(handler=_cmd_check_config)

    status = _command(
        commands,
        "status",
        "show the latest runs and the journal",
        "Print the newest runs from the state database with outcome and counts, and how "
        "many inventory batches the journal holds in each state.",
    )
    status.add_argument("--job", help="only this job")
    status.add_argument("--limit", type=int, default=10, help="runs to show (default 10)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_cmd_status)

    auth = commands.add_parser("auth", help="log in to Eyekiosk or show the stored grant")
    auth_commands = auth.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    login = auth_commands.add_parser("login", help="authorize this installation (OAuth 2.1 + PKCE)")
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="print the URL and read the final redirect URL from standard input",
    )
    login.set_defaults(handler=_cmd_auth_login)
    auth_status = auth_commands.add_parser("status", help="show client, scopes and expiry")
    auth_status.add_argument("--json", action="store_true", help="print JSON")
    auth_status.set_defaults(handler=_cmd_auth_status)

    orders = _command(
        commands,
        "orders",
        "pull kiosk orders, list them, set a status",
        "Pull new and changed kiosk orders into a job's order sink, list what was "
        "delivered (ids, statuses and times only), or change an order's status on Eyekiosk.",
    )
    from sync.orders_cli import add_arguments as add_orders_arguments

    add_orders_arguments(orders)

    webhooks = _command(
        commands,
        "webhooks",
        "list and manage Eyekiosk webhook subscriptions",
        "List webhook subscriptions with their delivery status, create one (its signing "
        "secret is stored in the state folder, never printed), enable, disable or delete one.",
    )
    from sync.webhooks_cli import add_arguments as add_webhooks_arguments

    add_webhooks_arguments(webhooks)

    adapters = commands.add_parser("adapters", help="list installed adapters")
    adapter_commands = adapters.add_subparsers(
        dest="adapters_command", required=True, metavar="ACTION"
    )
    adapter_list = adapter_commands.add_parser("list", help="print every installed adapter")
    adapter_list.set_defaults(handler=_cmd_adapters_list, needs_config=False)

    sandbox = _command(
        commands,
        "sandbox",
        "serve the local Partner API sandbox",
        "Serve a stand-in for the Eyekiosk Partner API on loopback, following "
        "docs/partner-api.md, for tests, demos and trying a config.",
    )
    from sync.sandbox.cli import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(sandbox)
    sandbox.set_defaults(handler=_cmd_sandbox, needs_config=False)

    demo = _command(
        commands,
        "demo",
        "run two cycles of the bundled sample export against a local sandbox",
        "Start the sandbox on a free loopback port, log in, and sync the bundled US sample "
        "export twice: the first cycle sends the changed frames; then a kiosk sale happens, "
        "and the second cycle pulls that order into a folder sink and holds back the sold "
        "unit, so it sends nothing.",
    )
    demo.add_argument(
        "--json", action="store_true", help="print the two run reports as a JSON list"
    )
    demo.set_defaults(handler=_cmd_demo, needs_config=False)
    return parser


def _command(commands: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EXIT_CODES,
        formatter_class=_HelpFormatter,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace, Settings | None], int] = args.handler
    try:
        settings = None
        if getattr(args, "needs_config", True):
            settings = load_settings(find_config(args.config))
            configure_logging(args.log_level or settings.logging.level, settings.logging.format)
        else:
            configure_logging(args.log_level or "WARNING")
        return handler(args, settings)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except AuthError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_AUTH
    except SyncError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def main_for(command: str, argv: Sequence[str] | None = None) -> int:
    """Run one command from arguments given without its name, as ``python -m`` modules do.

    The global options ``--config`` and ``--log-level`` may come first.
    """
    rest = list(sys.argv[1:] if argv is None else argv)
    head: list[str] = []
    while rest and rest[0] in GLOBAL_OPTIONS and len(rest) > 1:
        head += rest[:2]
        rest = rest[2:]
    return main([*head, command, *rest])


# Commands


def _cmd_sync(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None
    from sync.engine import SyncEngine
    from sync.runtime import job_scopes, open_client, state_store

    job = settings.job(args.job)
    needed = job_scopes(settings, [job])
    with state_store(settings) as store, open_client(settings, needed=needed) as client:
        report = SyncEngine(settings, client=client, store=store).run_job(
            job, dry_run=args.dry_run, force=args.force
        )
    _print_report(report, as_json=args.json)
    return OUTCOME_EXIT.get(report.outcome, EXIT_FAILED)


def _print_report(report: RunReport, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
        return
    print(format_report(report))
    if report.dry_run:
        _print_keys(
            "source keys that match no frame", report.unknown_keys, report.unknown_key_sample
        )
        _print_keys(
            "keys that match several frames", report.ambiguous_keys, report.ambiguous_key_sample
        )
    if report.dry_run and report.plan:
        print("  plan:")
        for entry in report.plan:
            parts = [f"{entry['key']} ({entry['frame_id']})"]
            if "quantity" in entry:
                parts.append(f"quantity {entry['quantity']['from']} -> {entry['quantity']['to']}")
            if "price" in entry:
                parts.append(f"price {entry['price']['from']} -> {entry['price']['to']}")
            print("    " + ", ".join(parts))


def _print_keys(title: str, count: int, keys: list[str]) -> None:
    if not count:
        return
    shown = f", first {len(keys)} listed" if len(keys) < count else ""
    print(f"  {title} ({count}{shown}):")
    for key in keys:
        print(f"    {key}")


def _cmd_run(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None
    from sync.engine import SyncEngine
    from sync.runtime import job_scopes, open_client, state_store
    from sync.scheduler import run_daemon

    if not settings.jobs:
        raise ConfigError("no [[jobs]] are configured; add one to the config file")
    needed = job_scopes(settings, settings.jobs)
    with state_store(settings) as store, open_client(settings, needed=needed) as client:
        return run_daemon(settings, SyncEngine(settings, client=client, store=store))


def _cmd_check_config(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None

    problems = []
    if not settings.jobs:
        problems.append("jobs: no [[jobs]] table; the daemon would have nothing to run")
    if not settings.auth.client_id:
        problems.append("auth.client_id: missing")
    try:
        secret = settings.auth.secret()
    except ConfigError as error:
        problems.append(str(error))
    else:
        if secret is None:
            print(
                "note: no client secret is set (EYEKIOSK_SYNC_AUTH__CLIENT_SECRET or "
                "auth.client_secret_file); that works only for a public OAuth client"
            )
    for job in settings.jobs:
        problems += _adapter_problems(settings, job)
    problems += _scope_problems(settings)
    for note in _missing_files(settings):
        print(f"note: {note}")
    if problems:
        print(f"{settings.config_path}: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return EXIT_CONFIG
    print(f"{settings.config_path}: valid, {len(settings.jobs)} job(s)")
    return EXIT_OK


def _adapter_problems(settings: Settings, job: JobSettings) -> list[str]:
    """Build each adapter of ``job`` once, to validate its options; return the problems."""
    from sync.orders import open_sink, open_status_source
    from sync.sources import build_source, source_context

    problems = []
    for index in range(len(job.sources)):
        try:
            build_source(settings, job, index).close()
        except ConfigError as error:
            problems.append(str(error))
    if job.orders is not None:
        context = source_context(settings, job)
        try:
            open_sink(job.orders.sink, job=job.name, context=context).close()
            if job.orders.status_source is not None:
                open_status_source(job.orders.status_source, job=job.name, context=context).close()
        except ConfigError as error:
            problems.append(str(error))
    return problems


def _scope_problems(settings: Settings) -> list[str]:
    """Compare the stored grant's scopes with those the configured jobs need."""
    from sync.runtime import job_scopes, token_path
    from sync.tokens import TokenStore

    try:
        token = TokenStore(token_path(settings)).load()
        needed = job_scopes(settings, settings.jobs)
    except SyncError as error:
        return [str(error)]
    if token is None:
        print("note: no grant is stored yet; run `eyekiosk-sync auth login`")
        return []
    return [
        f"auth.scopes: the stored grant lacks {scope!r}, which {feature} needs; add it to "
        "[auth] scopes and run `eyekiosk-sync auth login` again"
        for scope, feature in sorted(needed.items())
        if scope not in token.scopes
    ]


def _missing_files(settings: Settings) -> list[str]:
    """Name each source or status file that does not exist (yet): a note, not an error."""
    notes = []
    for job in settings.jobs:
        tables = [source.options() for source in job.sources]
        if job.orders is not None and job.orders.status_source is not None:
            tables.append(job.orders.status_source.options())
        for options in tables:
            path = options.get("path")
            if isinstance(path, str) and not settings.resolve(Path(path)).exists():
                notes.append(f"job {job.name}: {settings.resolve(Path(path))} does not exist yet")
    return notes


def _cmd_status(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None
    from sync.runtime import state_store

    with state_store(settings) as store:
        runs = store.recent_runs(args.job, limit=args.limit)
        journal = store.batch_counts(args.job)
    if args.json:
        print(json.dumps({"runs": runs, "batches": journal}, indent=2, default=_json_value))
        return EXIT_OK
    if not runs:
        print("no runs recorded yet")
    else:
        print(f"{'run':>6}  {'job':<20} {'outcome':<20} {'finished (UTC)':<20} changed  batches")
    for run in runs:
        counts = run["counts"]
        finished = _plain(run["finished_at"]) if run["finished_at"] else "-"
        outcome = run["outcome"] + (" (dry run)" if run["dry_run"] else "")
        print(
            f"{run['id']:>6}  {run['job']:<20} {outcome:<20} {finished:<20} "
            f"{counts.get('changed', 0):>7}  {counts.get('batches', 0):>7}"
            + (f"  error: {run['error']}" if run["error"] else "")
        )
    if journal:
        print(
            "journal: "
            + ", ".join(f"{status}={count}" for status, count in sorted(journal.items()))
        )
    return EXIT_OK


def _cmd_auth_login(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None
    from sync.auth import login
    from sync.runtime import ensure_state_dir, oauth_config, token_path
    from sync.tokens import TokenStore

    ensure_state_dir(settings)
    token = login(
        oauth_config(settings),
        TokenStore(token_path(settings)),
        no_browser=args.no_browser,
        open_browser=not args.no_browser,
    )
    print(
        f"logged in as client {settings.auth.client_id}; scopes: {' '.join(sorted(token.scopes))}"
    )
    return EXIT_OK


def _cmd_auth_status(args: argparse.Namespace, settings: Settings | None) -> int:
    assert settings is not None
    from sync.auth import status
    from sync.runtime import token_path
    from sync.tokens import TokenStore

    info = status(TokenStore(token_path(settings)))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for name, value in info.items():
            print(f"{name}: {_plain(value)}")
    return EXIT_OK


def _json_value(value: Any) -> str:
    if isinstance(value, datetime):
        return format_timestamp(value)
    return str(value)


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        return " ".join(sorted(str(item) for item in value))
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _cmd_adapters_list(args: argparse.Namespace, settings: Settings | None) -> int:
    from adapters.registry import installed_adapters

    for info in installed_adapters():
        print(f"{info.alias:<12} {info.kind:<14} {info.target:<45} {info.package} {info.version}")
    return EXIT_OK


def _cmd_sandbox(args: argparse.Namespace, settings: Settings | None) -> int:
    from sync.sandbox.cli import run_from_args

    return run_from_args(args)


def _cmd_demo(args: argparse.Namespace, settings: Settings | None) -> int:
    from sync.demo import run_demo

    return run_demo(as_json=args.json)


if __name__ == "__main__":
    raise SystemExit(main())
