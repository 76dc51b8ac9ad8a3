"""The runner and CLI wiring of the sandbox."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import httpx
import pytest

from sync.sandbox import SandboxServer
from sync.sandbox.cli import add_arguments, run_from_args
from sync.sandbox.server import check_bind_host


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])  # noqa: S104 - rejected hosts
def test_server_rejects_remote_host(host: str) -> None:
    """Binding a non-loopback host raises unless allowed on purpose."""
    with pytest.raises(ValueError, match="not a loopback address"):
        check_bind_host(host, allow_remote=False)


def test_server_allows_loopback_hosts() -> None:
    """Loopback hosts pass the bind check."""
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        check_bind_host(host, allow_remote=False)


def test_cli_rejects_remote_host(capsys: pytest.CaptureFixture[str]) -> None:
    """The sandbox command exits with status 2 and a message for a non-loopback --host."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--host", "0.0.0.0", "--port", "0"])  # noqa: S104 - rejected host

    status = run_from_args(args)

    assert status == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_cli_seed_options_exclusive() -> None:
    """--seed-csv and --frames cannot be given together."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)

    with pytest.raises(SystemExit):
        parser.parse_args(["--seed-csv", "x.csv", "--frames", "10"])


def test_server_generated_frames_and_stop(make_sandbox: Callable[..., SandboxServer]) -> None:
    """A sandbox of generated frames serves them with a custom client, then frees its port."""
    server = make_sandbox(frames=1_200, client_id="other-client", token_ttl=60)
    assert server.store is not None
    token = server.store.mint_token(["frames:read"])

    response = httpx.get(
        f"{server.url}/api/v1/partner/frames",
        params={"limit": 500, "offset": 1_000},
        headers={"Authorization": f"Bearer {token}"},
        trust_env=False,
    )
    url = server.url
    server.stop()

    assert response.json()["pagination"]["total"] == 1_200
    assert len(response.json()["data"]) == 200
    assert response.json()["data"][0]["sku"].startswith("FR-")
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, trust_env=False)


def test_server_start_twice_rejected(make_sandbox: Callable[..., SandboxServer]) -> None:
    """Starting a running server raises."""
    server = make_sandbox(frames=10)

    with pytest.raises(RuntimeError, match="already running"):
        server.start()
