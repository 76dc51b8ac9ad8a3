"""The ``orders`` commands, in process and as subprocesses, including a SIGKILL mid-pull."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.orders_cli import main
from sync.sandbox import SandboxServer
from tests.sync.orders_harness import OrderInstallation

REPO = Path(__file__).resolve().parents[2]

# Runs `orders pull` with chunks of 2 and kills the process with SIGKILL right after
# the sink wrote the second chunk, before that chunk is recorded or the checkpoint moves.
KILL_AFTER_SECOND_CHUNK = """
import os, signal, sys
import sync.orders
from adapters.order_folder import FolderOrderSink
sync.orders.DELIVERY_CHUNK = 2
original = FolderOrderSink.deliver
calls = []
def deliver(self, deliveries):
    results = original(self, deliveries)
    calls.append(len(deliveries))
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return results
FolderOrderSink.deliver = deliver
from sync.orders_cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what configure_logging in main() does to shared loggers, for the tests after these."""
    names = ("eyekiosk_sync", "httpx", "apscheduler")
    saved = [
        (logger, logger.level, logger.propagate, list(logger.handlers))
        for logger in map(logging.getLogger, names)
    ]
    yield
    for logger, level, propagate, handlers in saved:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


@pytest.fixture
def shop(tmp_path: Path, sandbox: SandboxServer) -> OrderInstallation:
    return OrderInstallation.with_orders(tmp_path, sandbox)


def _run(
    shop: OrderInstallation, *args: str, script: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable]
    command += ["-c", script] if script else ["-m", "sync.orders_cli"]
    command += ["--config", str(shop.config_path), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ}
    )


def test_orders_pull_killed_after_sink_write(shop: OrderInstallation) -> None:
    """A pull killed between the sink's write and the checkpoint loses and duplicates nothing."""
    order_ids = shop.store.create_sales(6)

    killed = _run(shop, "pull", script=KILL_AFTER_SECOND_CHUNK)
    with shop.state() as store:
        from sync.order_state import list_orders

        recorded = [record for record in list_orders(store, "shop") if record.delivered]
    files_after_kill = shop.delivered_orders()
    resumed = shop.pull()
    again = shop.pull()

    assert killed.returncode == -signal.SIGKILL
    assert len(files_after_kill) == 4
    assert len(recorded) == 2
    assert resumed.delivered == 4
    assert resumed.duplicates_skipped == 2
    assert again.delivered == 0
    assert sorted(shop.delivered_orders()) == sorted(order_ids)
    assert len(shop.order_files()) == 6
    assert not [path for path in shop.orders_folder.iterdir() if path.name.startswith(".")]


def test_orders_pull_command_json(
    shop: OrderInstallation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`orders pull --json` prints the report and exits 0 when every order was delivered."""
    shop.store.create_sales(3)

    code = main(["--config", str(shop.config_path), "pull", "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["delivered"] == 3
    assert report["job"] == "shop"


def test_orders_pull_since_option(
    shop: OrderInstallation, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since reads from the given time instead of the checkpoint; a bad value is a usage error."""
    shop.store.create_sales(2)

    code = main(["--config", str(shop.config_path), "pull", "--since", "2000-01-01T00:00:00Z"])
    with pytest.raises(SystemExit) as usage:
        main(["--config", str(shop.config_path), "pull", "--since", "yesterday"])

    assert code == 0
    assert "since 2000-01-01T00:00:00Z" in capsys.readouterr().out
    assert usage.value.code == 2


def test_orders_list_shows_ids_only(
    shop: OrderInstallation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`orders list --json` lists pulled orders newest first with ids, status and timestamps."""
    order_ids = shop.store.create_sales(3)
    shop.pull()

    code = main(["--config", str(shop.config_path), "list", "--json"])

    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [row["order_id"] for row in rows] == list(reversed(order_ids))
    assert set(rows[0]) == {
        "job", "order_id", "status", "created_at", "updated_at", "delivered_updated_at",
        "delivered_at", "items", "units", "has_prescription",
    }  # fmt: skip
    assert all(row["delivered_at"] for row in rows)


def test_orders_set_status_command(
    shop: OrderInstallation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`orders set-status` sends an allowed change and rejects a disallowed one by name."""
    order_id = shop.store.create_sales(1)[0]
    config = ["--config", str(shop.config_path)]

    moved = main([*config, "set-status", order_id, "in_progress"])
    refused = main([*config, "set-status", order_id, "pending"])

    output = capsys.readouterr()
    order = shop.store.orders.get(order_id)
    assert order is not None
    assert moved == 0
    assert refused == 1
    assert order.status == "in_progress"
    assert f"order {order_id}: pending -> in_progress" in output.out
    assert (
        f"order {order_id}: cannot go from in_progress to pending; "
        "allowed from in_progress: cancelled, completed, shipped"
    ) in output.err


def test_orders_pull_missing_scope_subprocess(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A grant without prescriptions:read fails before any call, naming the scope."""
    shop = OrderInstallation.with_orders(tmp_path, sandbox, scopes=("orders:read",))
    shop.store.create_sales(1)

    result = _run(shop, "pull")

    assert result.returncode == 4
    assert "prescriptions:read" in result.stderr
    assert shop.order_files() == []


def test_orders_pull_without_orders_table(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A job without [jobs.orders] is a configuration error (exit 2)."""
    from tests.sync.harness import Installation

    installation = Installation.create(tmp_path, sandbox)

    code = main(["--config", str(installation.config_path), "pull"])

    assert code == 2
