"""Run the sandbox with uvicorn: in a background thread for tests, or blocking for the CLI."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sync.background import BackgroundServer, bind_tcp
from sync.sandbox.app import build_app
from sync.sandbox.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from sync.sandbox.seeding import DEFAULT_CHANGE_SHARE, DEFAULT_SEED
from sync.sandbox.store import SandboxOptions, SandboxStore
from sync.sandbox.tokens import DEFAULT_ACCESS_TOKEN_TTL

logger = logging.getLogger("sync.sandbox.server")

LOOPBACK_HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


def is_loopback_bind(host: str) -> bool:
    """Tell whether host is `localhost` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, allow_remote: bool) -> None:
    """Reject a non-loopback host unless allow_remote is set.

    Raises:
        ValueError: host is not loopback and allow_remote is False.
    """
    if not allow_remote and not is_loopback_bind(host):
        raise ValueError(
            f"host {host!r} is not a loopback address; the sandbox has no real security, "
            "so bind it to 127.0.0.1, or pass allow_remote (--allow-remote) on purpose"
        )


def _uvicorn_config(store: SandboxStore, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(store),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
    )


class SandboxServer:
    """The sandbox served by uvicorn on a background thread, on a free loopback port.

    Use it as a context manager, or call `start` and `stop`:

        with SandboxServer(seed_csv=path, change_share=0.05) as sandbox:
            httpx.get(f"{sandbox.url}/.well-known/openid-configuration")
            token = sandbox.store.mint_token(["frames:read"])

    Args:
        options: seeding and OAuth settings; keyword arguments build one when omitted.
        host: loopback address to bind.
        port: port to bind; 0 takes a free one.
        **option_fields: fields of `SandboxOptions`, when options is None.

    Raises:
        ValueError: host is not loopback, or the options are invalid.
    """

    def __init__(
        self,
        options: SandboxOptions | None = None,
        *,
        host: str = LOOPBACK_HOST,
        port: int = 0,
        **option_fields: Any,
    ) -> None:
        check_bind_host(host, allow_remote=False)
        if options is not None and option_fields:
            raise ValueError("pass options or option keyword arguments, not both")
        self.options = options or SandboxOptions(**option_fields)
        self.host = host
        self._port = port
        self.store: SandboxStore | None = None
        self._background: BackgroundServer | None = None

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._background is not None

    @property
    def url(self) -> str:
        """Base URL, such as `http://127.0.0.1:54321`.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._background is None:
            raise RuntimeError("the sandbox server is not running")
        port = self._background.address[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    def start(self) -> SandboxServer:
        """Seed the store, bind the port and serve on a background thread.

        Raises:
            RuntimeError: already started, or uvicorn did not start in time.
        """
        if self._background is not None:
            raise RuntimeError("the sandbox server is already running")
        store = SandboxStore(self.options)
        store.start()
        try:
            background = BackgroundServer(
                _uvicorn_config(store, self.host, self._port),
                bind_tcp(self.host, self._port),
                name="sandbox server",
                startup_timeout=STARTUP_TIMEOUT_SECONDS,
                shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            )
            background.start()
        except (OSError, RuntimeError):
            store.close()
            raise
        self.store, self._background = store, background
        logger.info("sandbox.server.started url=%s frames=%d", self.url, len(store.catalogue))
        return self

    def stop(self) -> None:
        """Stop serving, stop webhook deliveries and release the port.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._background is None or self.store is None:
            raise RuntimeError("the sandbox server is not running")
        self._background.stop()
        self.store.close()
        self._background = None
        logger.info("sandbox.server.stopped")

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def serve(
    host: str = LOOPBACK_HOST,
    port: int = 8765,
    *,
    seed_csv: Path | str | None = None,
    change_share: float = DEFAULT_CHANGE_SHARE,
    frames: int | None = None,
    auto_consent: bool = False,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL,
    seed: int = DEFAULT_SEED,
    allow_remote: bool = False,
    orders_per_minute: float = 0.0,
) -> None:
    """Seed a sandbox and serve it in the foreground until interrupted (Ctrl+C or SIGTERM).

    Args:
        host: address to bind; must be loopback unless allow_remote is set.
        port: port to bind.
        seed_csv: US-layout stock export to seed from; the packaged sample when None.
        change_share: share of CSV frames seeded with another quantity or price.
        frames: generate this many frames instead of reading a CSV.
        auto_consent: approve authorization requests without the consent page.
        client_id: id of the registered OAuth client.
        client_secret: its secret.
        token_ttl: access token lifetime in seconds.
        seed: seed of every random choice.
        allow_remote: allow a non-loopback host.
        orders_per_minute: rate of simulated kiosk sales while serving; 0 makes none.

    Raises:
        ValueError: host is not loopback without allow_remote, or options are invalid.
    """
    check_bind_host(host, allow_remote)
    options = SandboxOptions(
        seed_csv=Path(seed_csv) if seed_csv is not None else None,
        change_share=change_share,
        frames=frames,
        seed=seed,
        client_id=client_id,
        client_secret=client_secret,
        token_ttl=token_ttl,
        auto_consent=auto_consent,
        orders_per_minute=orders_per_minute,
    )
    store = SandboxStore(options)
    store.start()
    logger.info(
        "sandbox.server.serving host=%s port=%d frames=%d client_id=%s auto_consent=%s "
        "orders_per_minute=%s",
        host,
        port,
        len(store.catalogue),
        client_id,
        auto_consent,
        orders_per_minute,
    )
    try:
        uvicorn.Server(_uvicorn_config(store, host, port)).run()
    finally:
        store.close()
        logger.info("sandbox.server.stopped")
