"""An installation with an order job against a test sandbox, and helpers to shape its orders."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from adapters.base import SourceContext
from sync.client import PartnerClient, RetryPolicy
from sync.config import JobSettings
from sync.orders import OrdersReport, sync_orders
from sync.runtime import state_store
from sync.sandbox import SandboxServer, SandboxStore
from sync.sandbox.clock import to_us
from sync.state import StateStore
from tests.sync.harness import Installation

ORDER_SCOPES = ("orders:read", "orders:full", "prescriptions:read")
FOLDER_SINK = 'adapter = "folder"\npath = "orders"\nprescriptions = true'


class Bearer(httpx.Auth):
    """Adds a fixed bearer token, for clients built without the token store."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class AfterOrdersPage(httpx.HTTPTransport):
    """A real transport that runs an action once, right after the first orders page."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__()
        self._action: Callable[[], None] | None = action

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self._action is not None and request.url.path.endswith("/orders"):
            response.read()
            action, self._action = self._action, None
            action()
        return response


@dataclass
class OrderInstallation(Installation):
    """An installation whose job ``shop`` also pulls orders into a sink."""

    scopes: tuple[str, ...] = ORDER_SCOPES
    page_limit: int = 2

    @classmethod
    def with_orders(
        cls,
        folder: Path,
        sandbox: SandboxServer,
        *,
        scopes: tuple[str, ...] = ORDER_SCOPES,
        sink: str = FOLDER_SINK,
        orders_options: str = "overlap_s = 5",
        status_source: str = "",
        page_limit: int = 2,
    ) -> OrderInstallation:
        """Write the config with a ``[jobs.orders]`` table and store a token with ``scopes``."""
        installation = cls.create(
            folder, sandbox, scopes=scopes, partner_options=f"page_limit = {page_limit}"
        )
        assert isinstance(installation, OrderInstallation)
        installation.scopes = scopes
        installation.page_limit = page_limit
        text = f"\n[jobs.orders]\n{orders_options}\n\n[jobs.orders.sink]\n{sink}\n"
        if status_source:
            text += f"\n[jobs.orders.status_source]\n{status_source}\n"
        with installation.config_path.open("a", encoding="utf-8") as handle:
            handle.write(text)
        return installation

    @property
    def store(self) -> SandboxStore:
        assert self.sandbox.store is not None
        return self.sandbox.store

    @property
    def job(self) -> JobSettings:
        return self.settings.jobs[0]

    @property
    def orders_folder(self) -> Path:
        return self.folder / "orders"

    def context(self) -> SourceContext:
        settings = self.settings
        return SourceContext(job="shop", config_dir=self.folder, state_dir=settings.state.dir)

    def client(self, transport: httpx.BaseTransport | None = None) -> PartnerClient:
        """Return a client with a fresh token of the installation's scopes and no retries."""
        token = self.store.mint_token(list(self.scopes), 3600)
        return PartnerClient(
            self.sandbox.url,
            auth=Bearer(token),
            retry=RetryPolicy.disabled(),
            page_limit=self.page_limit,
            transport=transport,
        )

    def pull(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        since: datetime | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> OrdersReport:
        """Run ``sync_orders`` once with a fresh client and state store."""
        with state_store(self.settings) as store, self.client(transport) as client:
            return sync_orders(
                self.job, client=client, store=store, context=self.context(), since=since, now=now
            )

    def state(self) -> StateStore:
        """Return the installation's state store, not yet open."""
        return state_store(self.settings)

    def order_files(self) -> list[Path]:
        """Return the order files in the sink folder, sorted by name (prescription files too)."""
        if not self.orders_folder.exists():
            return []
        return sorted(self.orders_folder.iterdir())

    def delivered_orders(self) -> dict[str, dict[str, Any]]:
        """Return the JSON order files' contents keyed by order id."""
        found = {}
        for path in self.order_files():
            body = json.loads(path.read_text(encoding="utf-8"))
            found[body["order"]["id"]] = body
        return found

    def stamp_orders(self, order_ids: list[str], moment: datetime) -> None:
        """Give orders one ``updated_at`` on the sandbox, as a clock with whole seconds would."""
        value = to_us(moment)
        for order_id in order_ids:
            order = self.store.orders.get(order_id)
            assert order is not None, order_id
            order.updated_at_us = value
        self.store.clock.advance_past(value)


def whole_second(moment: datetime | None = None) -> datetime:
    """Return ``moment`` (now by default) with the fraction of the second dropped."""
    return (moment or datetime.now(UTC)).replace(microsecond=0)
