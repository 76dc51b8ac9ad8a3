"""Time whole sync cycles at catalogue sizes such as 100,000 and 1,000,000 frames.

For each size the benchmark starts ``eyekiosk-sync sandbox --frames N`` in its
own process, writes a US-layout export that matches the sandbox's frames except
for a share of changed rows (1% by default), and runs ``eyekiosk-sync sync
--json`` in a fresh process per cycle. The first cycle reads every frame (full
rescan). Before each steady-state cycle a fresh share of rows changes, and the
cycle refreshes the mirror incrementally (``full_rescan_every = 0``).

Per cycle it records wall time, the engine's ``duration_s``, peak RSS of the
sync process (``ru_maxrss`` from ``wait4``), and inventory requests against the
minimum ``ceil(changed / 100)``. Per size it also times ``pd.read_csv(path,
dtype=str)`` and the csv adapter's ``read()`` on the final export, best of 3.

Run from the project root::

    .venv/bin/python -m benchmarks.cycle --frames 100000 1000000

It prints a Markdown table and writes JSON to ``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.export import StockExport
from benchmarks.sandbox import SandboxProcess
from sync.config import load_settings
from sync.models import MAX_INVENTORY_BATCH
from sync.runtime import token_path
from sync.sandbox.seeding import DEFAULT_SEED
from sync.sources import build_source
from sync.tokens import StoredToken, TokenStore

OUT_DIR = Path(__file__).resolve().parent / "out"
DEFAULT_FRAMES = (100_000, 1_000_000)
DEFAULT_STEADY_CYCLES = 3
DEFAULT_CHANGE_SHARE = 0.01
PARSE_REPEATS = 3
INVENTORY_REQUEST = "POST /api/v1/partner/inventory"
SCOPES = ["frames:read", "inventory:write"]
TOKEN_TTL_S = 24 * 3600
MIB = 1024 * 1024

CONFIG_TEMPLATE = """\
[partner]
base_url = "{url}"

[auth]
client_id = "sandbox-client"
client_secret_file = "client_secret"

[state]
dir = "state"

[mirror]
# With 0, only the first cycle reads every frame, because it has no watermark yet.
full_rescan_every = 0

[[jobs]]
name = "shop"

[[jobs.sources]]
adapter = "csv"
path = "stock.csv"

[jobs.sources.columns]
key = "Item Code"
quantity = "On Hand"
price = "Retail Price"
"""


@dataclass(slots=True)
class CycleResult:
    """One ``eyekiosk-sync sync`` process.

    Attributes:
        kind: "first" for the full rescan, "steady" for an incremental cycle.
        exit_status: the process's exit status; 0 is success.
        wall_s: from process start to exit, including interpreter start and imports.
        duration_s: the engine's own ``duration_s`` from the run report.
        peak_rss_mib: ``ru_maxrss`` of the sync process.
        changed_in_export: rows changed in the export since the previous cycle.
        changed: changes the engine found.
        inventory_requests: ``POST /inventory`` requests in the run report.
        inventory_requests_received: the same requests as counted by the sandbox.
        minimum_requests: ``ceil(changed / 100)``.
        mirror_fetched: frames the mirror refresh read.
        full_rescan: whether the mirror refresh read every frame.
        outcome: the run report's outcome.
    """

    kind: str
    exit_status: int
    wall_s: float
    duration_s: float
    peak_rss_mib: float
    changed_in_export: int
    changed: int
    inventory_requests: int
    inventory_requests_received: int
    minimum_requests: int
    mirror_fetched: int
    full_rescan: bool
    outcome: str


@dataclass(slots=True)
class SizeResult:
    """Every measurement at one catalogue size."""

    frames: int
    export_mib: float = 0.0
    sandbox_start_s: float = 0.0
    pandas_parse_s: float = 0.0
    adapter_read_s: float = 0.0
    cycles: list[CycleResult] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each requested size; return the exit status."""
    args = _parse_args(argv)
    command = _sync_command()
    results = []
    with tempfile.TemporaryDirectory(prefix="eyekiosk-bench-") as scratch:
        for frames in args.frames:
            folder = Path(scratch) / f"frames-{frames}"
            folder.mkdir()
            print(f"== {frames:,} frames", file=sys.stderr)
            results.append(
                bench_size(
                    frames,
                    command=command,
                    folder=folder,
                    steady_cycles=args.steady_cycles,
                    change_share=args.change_share,
                    seed=args.seed,
                )
            )
            if args.keep:
                shutil.copytree(folder, args.keep / folder.name, dirs_exist_ok=True)

    print(format_table(results))
    path = write_json(results, args)
    print(f"\nJSON results: {path}", file=sys.stderr)
    failed = [c for r in results for c in r.cycles if c.exit_status != 0]
    return 1 if failed else 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--frames",
        type=int,
        nargs="+",
        default=list(DEFAULT_FRAMES),
        help="catalogue sizes to measure (default: 100000 1000000)",
    )
    parser.add_argument(
        "--steady-cycles",
        type=int,
        default=DEFAULT_STEADY_CYCLES,
        help=f"steady-state cycles per size (default {DEFAULT_STEADY_CYCLES})",
    )
    parser.add_argument(
        "--change-share",
        type=float,
        default=DEFAULT_CHANGE_SHARE,
        help=f"share of export rows changed before each cycle (default {DEFAULT_CHANGE_SHARE})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help="seed of the sandbox's frames and of the changed rows",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        help="copy each size's folder (config, export, state, logs) here for inspection",
    )
    args = parser.parse_args(argv)
    if not 0 < args.change_share <= 1:
        parser.error("--change-share must be above 0 and at most 1")
    if args.steady_cycles < 1:
        parser.error("--steady-cycles must be 1 or more")
    return args


def _sync_command() -> Path:
    """Return the ``eyekiosk-sync`` script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "eyekiosk-sync"
    if not script.exists():
        raise SystemExit(
            f"eyekiosk-sync is not installed next to {sys.executable}; "
            f"run scripts/setup-venv.sh or pip install -e ."
        )
    return script


def bench_size(
    frames: int,
    *,
    command: Path,
    folder: Path,
    steady_cycles: int,
    change_share: float,
    seed: int,
) -> SizeResult:
    """Measure the first cycle and ``steady_cycles`` steady-state cycles at one size."""
    result = SizeResult(frames=frames)
    export_path = folder / "stock.csv"
    rng = np.random.default_rng(seed)
    per_cycle = round(frames * change_share)

    # Build the export before the sandbox starts, so the two do not compete for the CPU.
    started = time.perf_counter()
    export = StockExport(frames, seed)
    _progress(f"export rows built in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    with SandboxProcess(command, frames, folder / "sandbox.log") as sandbox:
        result.sandbox_start_s = round(time.perf_counter() - started, 1)
        config_path = write_installation(folder, sandbox)

        # The first cycle finds the changes through a full rescan of the mirror.
        export.change(per_cycle, rng)
        export.write(export_path)
        result.export_mib = round(export_path.stat().st_size / MIB, 1)
        result.cycles.append(run_cycle(command, config_path, sandbox, "first", per_cycle))

        # Steady state: a fresh share of rows changes before every cycle.
        for _ in range(steady_cycles):
            export.change(per_cycle, rng)
            export.write(export_path)
            result.cycles.append(run_cycle(command, config_path, sandbox, "steady", per_cycle))

    # Parse times are taken with the sandbox stopped, so nothing competes for the CPU.
    result.pandas_parse_s = best_of(PARSE_REPEATS, lambda: pd.read_csv(export_path, dtype=str))
    result.adapter_read_s = best_of(PARSE_REPEATS, lambda: read_with_adapter(config_path))
    _progress(
        f"pandas parse {result.pandas_parse_s:.2f} s, adapter read {result.adapter_read_s:.2f} s"
    )
    return result


def write_installation(folder: Path, sandbox: SandboxProcess) -> Path:
    """Write the config, the client secret and a stored grant for ``sandbox``."""
    (folder / "client_secret").write_text("sandbox-secret", encoding="utf-8")
    config_path = folder / "config.toml"
    config_path.write_text(CONFIG_TEMPLATE.format(url=sandbox.url), encoding="utf-8")

    settings = load_settings(config_path)
    settings.state.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    TokenStore(token_path(settings)).save(
        StoredToken(
            access_token=sandbox.mint_token(SCOPES, TOKEN_TTL_S),
            refresh_token=None,
            expires_at=datetime.now(UTC) + timedelta(seconds=TOKEN_TTL_S),
            scope=" ".join(SCOPES),
            client_id="sandbox-client",
            token_endpoint=f"{sandbox.url}/oauth/token",
        )
    )
    return config_path


def run_cycle(
    command: Path, config_path: Path, sandbox: SandboxProcess, kind: str, changed_in_export: int
) -> CycleResult:
    """Run ``eyekiosk-sync sync --json`` in a fresh process and measure it."""
    folder = config_path.parent
    number = len(list(folder.glob("cycle-*.json"))) + 1
    report_path = folder / f"cycle-{number}.json"
    log_path = folder / f"cycle-{number}.log"
    received_before = sandbox.request_counts().get(INVENTORY_REQUEST, 0)

    started = time.perf_counter()
    with report_path.open("wb") as stdout, log_path.open("wb") as stderr:
        process = subprocess.Popen(
            [str(command), "--config", str(config_path), "sync", "--json"],
            stdout=stdout,
            stderr=stderr,
        )
        # wait4 gives this child's own rusage, so ru_maxrss is this cycle's peak alone.
        _, status, usage = os.wait4(process.pid, 0)
    wall_s = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)

    received = sandbox.request_counts().get(INVENTORY_REQUEST, 0) - received_before
    report = _load_report(report_path, log_path, process.returncode)
    cycle = CycleResult(
        kind=kind,
        exit_status=process.returncode,
        wall_s=round(wall_s, 2),
        duration_s=float(report.get("duration_s", 0.0)),
        # Linux reports ru_maxrss in KiB.
        peak_rss_mib=round(usage.ru_maxrss / 1024, 1),
        changed_in_export=changed_in_export,
        changed=int(report.get("changed", 0)),
        inventory_requests=int(report.get("requests", {}).get(INVENTORY_REQUEST, 0)),
        inventory_requests_received=received,
        minimum_requests=math.ceil(int(report.get("changed", 0)) / MAX_INVENTORY_BATCH),
        mirror_fetched=int(report.get("mirror_fetched", 0)),
        full_rescan=bool(report.get("mirror_full_rescan", False)),
        outcome=str(report.get("outcome", "no report")),
    )
    _progress(
        f"{kind} cycle: exit {cycle.exit_status}, outcome {cycle.outcome}, wall {cycle.wall_s} s, "
        f"duration {cycle.duration_s} s, peak RSS {cycle.peak_rss_mib} MiB, "
        f"changed {cycle.changed}, inventory requests {cycle.inventory_requests}"
    )
    return cycle


def _load_report(report_path: Path, log_path: Path, exit_status: int) -> dict[str, Any]:
    try:
        report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        _progress(f"sync exited with status {exit_status} without a JSON report; see {log_path}")
        return {}
    return report


def read_with_adapter(config_path: Path) -> None:
    """Read the job's source the way the engine does, through the registered adapter."""
    settings = load_settings(config_path)
    adapter = build_source(settings, settings.jobs[0], 0)
    try:
        adapter.read()
    finally:
        adapter.close()


def best_of(repeats: int, action: Callable[[], object]) -> float:
    """Run ``action`` ``repeats`` times and return the fastest run in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(min(times), 3)


def format_table(results: list[SizeResult]) -> str:
    """Return one Markdown row per cycle, with the size's parse times and ratios."""
    lines = [
        "| Frames | Cycle | Wall s | duration_s | Peak RSS MiB | pandas parse s | "
        "adapter read s | duration_s / parse | Wall / parse | Mirror frames read | Changed | "
        "Inventory requests / minimum |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size in results:
        for cycle in size.cycles:
            parse = size.pandas_parse_s or float("nan")
            lines.append(
                f"| {size.frames:,} | {cycle.kind} | {cycle.wall_s:.2f} | {cycle.duration_s:.2f} | "
                f"{cycle.peak_rss_mib:.0f} | {size.pandas_parse_s:.2f} | "
                f"{size.adapter_read_s:.2f} | {cycle.duration_s / parse:.2f} | "
                f"{cycle.wall_s / parse:.2f} | {cycle.mirror_fetched:,} | {cycle.changed:,} | "
                f"{cycle.inventory_requests} / {cycle.minimum_requests} |"
            )
    return "\n".join(lines)


def write_json(results: list[SizeResult], args: argparse.Namespace) -> Path:
    """Write the results with the machine and versions to ``benchmarks/out/``."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = OUT_DIR / f"cycle-{stamp}.json"
    document = {
        "created_at": stamp,
        "arguments": {
            "frames": args.frames,
            "steady_cycles": args.steady_cycles,
            "change_share": args.change_share,
            "seed": args.seed,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "pandas": pd.__version__,
        },
        "results": [asdict(size) for size in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def _progress(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
