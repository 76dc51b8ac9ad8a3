"""A configured installation against a test sandbox: config file, token, state folder.

Tests build one with ``Installation.create`` and run cycles through the real
engine, client and state database, over real HTTP to the sandbox.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync.config import Settings, load_settings
from sync.engine import SyncEngine
from sync.report import RunReport
from sync.runtime import open_client, state_store, token_path
from sync.sandbox import SandboxServer
from sync.tokens import StoredToken, TokenStore

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
US_EXPORT = DATA_DIR / "stock_export_us.csv"
US_HEADER = [
    "Item Code", "UPC", "Brand", "Model", "Color Code", "Color", "Eye", "Bridge", "Temple",
    "On Hand", "Retail Price",
]  # fmt: skip
DEFAULT_SCOPES = ("frames:read", "inventory:write")


def read_export(path: Path = US_EXPORT) -> list[dict[str, str]]:
    """Return the rows of a US-layout export as dicts."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_export(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write rows in the US export layout."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=US_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


@dataclass
class Installation:
    """One installation's folder, settings and stored grant."""

    folder: Path
    config_path: Path
    export_path: Path
    sandbox: SandboxServer

    @classmethod
    def create(
        cls,
        folder: Path,
        sandbox: SandboxServer,
        *,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        job_options: str = "",
        mirror_options: str = "",
        partner_options: str = "",
    ) -> Installation:
        """Write a config for ``sandbox`` into ``folder`` with the US export and a token."""
        export = folder / "stock.csv"
        shutil.copyfile(US_EXPORT, export)
        (folder / "client_secret").write_text("sandbox-secret", encoding="utf-8")
        config = folder / "config.toml"
        config.write_text(
            f"""
[partner]
base_url = "{sandbox.url}"
retry_max_delay_s = 5
{partner_options}

[auth]
client_id = "sandbox-client"
client_secret_file = "client_secret"

[state]
dir = "state"

[mirror]
{mirror_options}

[[jobs]]
name = "shop"
{job_options}

[[jobs.sources]]
adapter = "csv"
path = "stock.csv"

[jobs.sources.columns]
key = "Item Code"
quantity = "On Hand"
price = "Retail Price"
""",
            encoding="utf-8",
        )
        installation = cls(folder=folder, config_path=config, export_path=export, sandbox=sandbox)
        installation.grant(scopes)
        return installation

    @property
    def settings(self) -> Settings:
        return load_settings(self.config_path)

    def grant(self, scopes: tuple[str, ...]) -> None:
        """Store an access token minted by the sandbox with these scopes."""
        assert self.sandbox.store is not None
        access = self.sandbox.store.mint_token(list(scopes), 3600)
        settings = self.settings
        settings.state.dir.mkdir(parents=True, exist_ok=True)
        TokenStore(token_path(settings)).save(
            StoredToken(
                access_token=access,
                refresh_token=None,
                expires_at=datetime.now(UTC) + timedelta(hours=1),
                scope=" ".join(scopes),
                client_id="sandbox-client",
                token_endpoint=f"{self.sandbox.url}/oauth/token",
            )
        )

    def append_config(self, text: str) -> None:
        """Append TOML to the config file, e.g. a second ``[[jobs.sources]]`` table."""
        with self.config_path.open("a", encoding="utf-8") as handle:
            handle.write(text)

    def write_rows(self, rows: list[dict[str, str]]) -> None:
        write_export(self.export_path, rows)

    def sync(self, **options: Any) -> RunReport:
        """Run one cycle of the job with a fresh client and store, as `eyekiosk-sync sync` does."""
        settings = self.settings
        with state_store(settings) as store, open_client(settings) as client:
            engine = SyncEngine(settings, client=client, store=store)
            return engine.run_job(settings.jobs[0], **options)
