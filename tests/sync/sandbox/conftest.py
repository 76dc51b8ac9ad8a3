"""Fixtures of the sandbox's own tests: an httpx client on the session sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync.sandbox import SandboxServer


@pytest.fixture
def http(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """An httpx client with the sandbox's base URL and no environment proxies."""
    with httpx.Client(base_url=sandbox.url, trust_env=False, timeout=10) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header for token."""
    return {"Authorization": f"Bearer {token}"}
