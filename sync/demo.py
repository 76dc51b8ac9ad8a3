"""``eyekiosk-sync demo``: the whole product on the bundled sample, with nothing to set up.

The demo starts the sandbox on a free loopback port, seeded from the bundled US
sample export with 5% of quantities and prices changed, writes a working config
into a temporary folder, logs in without a person (the sandbox consents at once
in this mode), and runs two cycles: the first sends exactly the changed frames,
the second finds nothing to send.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.resources import as_file, files
from pathlib import Path

import httpx

from sync.config import Settings, load_settings
from sync.engine import SyncEngine
from sync.report import RunReport, format_report, plural
from sync.runtime import (
    ensure_state_dir,
    job_scopes,
    oauth_config,
    open_client,
    state_store,
    token_path,
)
from sync.sandbox.server import SandboxServer
from sync.sandbox.store import SandboxStore
from sync.tokens import TokenStore

SAMPLE_NAME = "stock_export_us.csv"
CHANGE_SHARE = 0.05
DEMO_CLIENT_ID = "demo-client"


def sample_export() -> Path:
    """Return the path of the bundled US sample export."""
    with as_file(files("sync").joinpath("data", SAMPLE_NAME)) as path:
        return Path(path)


def write_demo_config(folder: Path, *, base_url: str, client_secret: str, sample: Path) -> Path:
    """Write a working config for the sandbox at ``base_url`` into ``folder``; return its path."""
    secret_file = folder / "client_secret"
    secret_file.write_text(client_secret, encoding="utf-8")
    secret_file.chmod(0o600)
    config = folder / "config.toml"
    config.write_text(
        f"""# Written by `eyekiosk-sync demo`.
[partner]
base_url = "{base_url}"

[auth]
client_id = "{DEMO_CLIENT_ID}"
client_secret_file = "client_secret"
scopes = ["openid", "frames:read", "inventory:write", "orders:read", "prescriptions:read"]

[state]
dir = "state"

[[jobs]]
name = "demo"
interval_minutes = 15
match_on = "sku"

[[jobs.sources]]
adapter = "csv"
path = "{sample.name}"

[jobs.sources.columns]
key = "Item Code"
quantity = "On Hand"
price = "Retail Price"

[jobs.orders]
settle_minutes = 60

[jobs.orders.sink]
adapter = "folder"
path = "orders"
prescriptions = true
""",
        encoding="utf-8",
    )
    return config


def run_demo(*, as_json: bool = False) -> int:
    """Run the demo and print both run reports; return the exit code."""
    with tempfile.TemporaryDirectory(prefix="eyekiosk-sync-demo-") as temporary:
        folder = Path(temporary)
        sample = folder / SAMPLE_NAME
        shutil.copyfile(sample_export(), sample)
        client_secret = os.urandom(16).hex()

        with SandboxServer(
            seed_csv=sample,
            change_share=CHANGE_SHARE,
            auto_consent=True,
            client_id=DEMO_CLIENT_ID,
            client_secret=client_secret,
        ) as sandbox:
            settings = load_settings(
                write_demo_config(
                    folder, base_url=sandbox.url, client_secret=client_secret, sample=sample
                )
            )
            assert sandbox.store is not None
            reports = _login_and_sync(settings, sandbox.store, quiet=as_json)

    if as_json:
        print(json.dumps([report.as_dict() for report in reports], indent=2, default=str))
    else:
        for number, report in enumerate(reports, start=1):
            print(f"cycle {number}")
            print(format_report(report))
            print()
        first, second = reports
        orders = second.orders or {}
        files = ", ".join(orders.get("files", [])) or "none"
        print(f"Order files the folder sink wrote in cycle 2: {files}")
        print(
            f"The second cycle pulled "
            f"{plural(orders.get('delivered', 0), 'kiosk order', 'kiosk orders')} into the "
            f"folder sink and held back {plural(second.netted_units, 'unit', 'units')} sold at "
            "the kiosk, which the sample export does not count yet."
        )
        print(
            f"The first cycle sent {first.changed} changed frames in "
            f"{plural(_inventory_requests(first), 'inventory request', 'inventory requests')}; "
            f"the second found {second.changed} changes and sent "
            f"{plural(_inventory_requests(second), 'inventory request', 'inventory requests')}."
        )
    return 0 if all(report.outcome == "success" for report in reports) else 1


def _login_and_sync(settings: Settings, sandbox: SandboxStore, *, quiet: bool) -> list[RunReport]:
    from sync.auth import login

    ensure_state_dir(settings)
    with httpx.Client(timeout=settings.partner.timeout_s) as browser:
        login(
            oauth_config(settings),
            TokenStore(token_path(settings)),
            open_browser=False,
            follow_redirects_with=browser,
            print_fn=lambda _text: None,
            timeout=30,
        )
    if not quiet:
        print(f"logged in to the sandbox as {DEMO_CLIENT_ID} (the sandbox consents at once)\n")
    job = settings.jobs[0]
    needed = job_scopes(settings, [job])
    with state_store(settings) as store, open_client(settings, needed=needed) as client:
        engine = SyncEngine(settings, client=client, store=store)
        first = engine.run_job(job)
        # A customer buys a frame at the kiosk; the practice's export does not count it yet.
        sandbox.create_sales(1)
        second = engine.run_job(job)
    if not quiet:
        folder = settings.resolve(Path("orders"))
        names = sorted(path.name for path in folder.iterdir()) if folder.exists() else []
        second.orders = {**(second.orders or {}), "files": names}
    return [first, second]


def _inventory_requests(report: RunReport) -> int:
    return sum(count for name, count in report.requests.items() if name.endswith("/inventory"))


__all__ = ["run_demo", "sample_export", "write_demo_config"]
