"""The sandbox in its own process, so its memory never counts towards a sync cycle's."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from sync.sandbox.server import LOOPBACK_HOST

# Seeding a million frames takes the sandbox tens of seconds before it listens.
STARTUP_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 10.0


class SandboxProcess:
    """``eyekiosk-sync sandbox --frames N`` on a free loopback port, as a context manager.

    Args:
        command: the ``eyekiosk-sync`` executable.
        frames: number of generated frames to seed.
        log_path: file that receives the sandbox's output.
    """

    def __init__(self, command: Path, frames: int, log_path: Path) -> None:
        self.command = command
        self.frames = frames
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://{LOOPBACK_HOST}:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SandboxProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the process and wait until the admin endpoints respond.

        Raises:
            RuntimeError: the process exited or did not respond within ``STARTUP_TIMEOUT_S``.
        """
        command = [
            str(self.command),
            "sandbox",
            "--host",
            LOOPBACK_HOST,
            "--port",
            str(self.port),
            "--frames",
            str(self.frames),
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"the sandbox exited with status {self._process.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                httpx.get(f"{self.url}/_sandbox/requests", timeout=2.0).raise_for_status()
                return
            except httpx.TransportError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"the sandbox did not respond on {self.url} within {STARTUP_TIMEOUT_S:.0f} s; "
            f"see {self.log_path}"
        )

    def stop(self) -> None:
        """Stop the process with SIGTERM, then SIGKILL if it has not exited in time."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def mint_token(self, scopes: list[str], ttl_s: int) -> str:
        """Mint an access token through ``POST /_sandbox/tokens`` and return it."""
        response = httpx.post(
            f"{self.url}/_sandbox/tokens", json={"scopes": scopes, "ttl": ttl_s}, timeout=10.0
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def request_counts(self) -> dict[str, int]:
        """Return the Partner API requests the sandbox received, keyed by method and route."""
        response = httpx.get(f"{self.url}/_sandbox/requests", timeout=10.0)
        response.raise_for_status()
        counts: dict[str, int] = response.json()["requests"]
        return counts


def _free_port() -> int:
    # NOTE: another program could take the port between this check and the
    # sandbox's bind. The sandbox then exits, and start() reports it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        return int(probe.getsockname()[1])
