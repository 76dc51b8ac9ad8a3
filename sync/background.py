"""Serve an ASGI app with uvicorn on a background thread, on a socket bound beforehand.

The sandbox (for tests and the demo) and the daemon's webhook receiver both run
this way. Binding the socket first gives the caller the real port at once,
including a free port picked with port 0, and a bind error before any thread
starts.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def bind_tcp(host: str, port: int) -> socket.socket:
    """Bind a TCP socket to ``host`` and ``port`` (0 picks a free port) for uvicorn.

    Raises:
        socket.gaierror: the host name cannot be resolved.
        OSError: the address cannot be bound.
    """
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    # proto must be IPPROTO_TCP, because asyncio sets TCP_NODELAY only on such sockets,
    # and without it every keep-alive response waits for a delayed ACK (about 40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class BackgroundServer:
    """A uvicorn server on its own thread, serving on a socket the caller bound.

    ``start`` and ``stop`` come as a pair; ``stop`` also closes the socket.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        sock: socket.socket,
        *,
        name: str,
        startup_timeout: float,
        shutdown_timeout: float,
    ) -> None:
        self.name = name
        self.socket = sock
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout

    @property
    def address(self) -> tuple[Any, ...]:
        """The bound address: ``(host, port)``, plus flow and scope ids for IPv6."""
        return tuple(self.socket.getsockname())

    def start(self) -> None:
        """Serve on the background thread and wait until uvicorn accepts connections.

        Raises:
            RuntimeError: uvicorn did not start within the startup timeout.
        """
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)

    def stop(self) -> bool:
        """Let the requests in flight finish, stop the thread and close the socket.

        Returns:
            False when the thread had to be forced to exit after the shutdown timeout.
        """
        self._server.should_exit = True
        self._thread.join(self._shutdown_timeout)
        graceful = not self._thread.is_alive()
        if not graceful:
            self._server.force_exit = True
            self._thread.join(self._shutdown_timeout)
        self.socket.close()
        return graceful


__all__ = ["BackgroundServer", "bind_tcp"]
