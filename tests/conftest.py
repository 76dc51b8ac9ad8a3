"""Shared fixtures: a Partner API sandbox on loopback and tokens for it.

`sandbox` is one server per test session (per xdist worker), reset to its seeded
state before each test. `make_sandbox` starts a separate server with other options
for the tests that need them, and stops it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import SandboxServer, SandboxStore

DATA_DIR = Path(__file__).parent / "data"
US_EXPORT = DATA_DIR / "stock_export_us.csv"
SANDBOX_CHANGE_SHARE = 0.05
SANDBOX_SEED = 1234

MintToken = Callable[..., str]


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox for the session, seeded from tests/data/stock_export_us.csv."""
    options = {"seed_csv": US_EXPORT, "change_share": SANDBOX_CHANGE_SHARE, "seed": SANDBOX_SEED}
    with SandboxServer(**options) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session sandbox, reset to its seeded state: frames, orders, tokens, faults, counts."""
    store(sandbox_server).reset()
    return sandbox_server


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start extra sandboxes with `SandboxOptions` keyword arguments; all stop after the test."""
    started: list[SandboxServer] = []

    def start(**options: Any) -> SandboxServer:
        server = SandboxServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.running:
            server.stop()


@pytest.fixture
def mint_token(sandbox: SandboxServer) -> MintToken:
    """Mint access tokens on the `sandbox` fixture: `mint_token("frames:read", ttl=60)`."""

    def mint(*scopes: str, ttl: float | None = None) -> str:
        return store(sandbox).mint_token(list(scopes), ttl)

    return mint


def store(server: SandboxServer) -> SandboxStore:
    """Return the store of a running sandbox."""
    assert server.store is not None, "the sandbox server is not running"
    return server.store
