"""Loopback HTTP and SFTP servers that serve supplier feeds to the ``feed`` adapter's tests.

``FeedHttpServer`` serves byte bodies by path from a thread, with ETag and
Last-Modified validators, 304 responses, gzip, auth checks, redirects and faults
(a cut-off body, a slow or trickling body, server errors, a 304 without a
conditional request). It counts full downloads per path, so tests
can tell a 304 from a download.

``FeedSftpServer`` runs an asyncssh SFTP server in a thread with its own event
loop, a generated host key, one password login and a folder as its root.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncssh

LOOPBACK = "127.0.0.1"
# A second loopback address, so that a redirect can point at another host.
OTHER_LOOPBACK = "127.0.0.2"


@dataclass
class Route:
    """The HTTP server's response for one path.

    Attributes:
        body: the bytes served (before Content-Encoding).
        etag: sent as ETag unless None; ``If-None-Match`` with it gives 304.
        last_modified: sent as Last-Modified unless None; ``If-Modified-Since``
            with the same text gives 304.
        gzip_encoding: send the body gzip-compressed with ``Content-Encoding: gzip``.
        basic: required ``(user, password)``, or None.
        bearer: required bearer token, or None.
        header: required ``(name, value)``, or None.
        query: required ``(name, value)`` query parameter, or None.
        cut_after: send a Content-Length of the full body, then only this many
            bytes, and close the connection.
        delay_s: wait this long before sending the body.
        failures: answer 503 this many times before answering normally.
        declare_length: send Content-Length (False sends the body until close).
        redirect: answer ``redirect_status`` with this Location instead of the body.
        redirect_status: the status of a redirect.
        always_not_modified: answer 304 to every request, conditional or not.
        trickle_s: send the body one byte at a time, waiting this long before each.
    """

    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    gzip_encoding: bool = False
    basic: tuple[str, str] | None = None
    bearer: str | None = None
    header: tuple[str, str] | None = None
    query: tuple[str, str] | None = None
    cut_after: int | None = None
    delay_s: float = 0.0
    failures: int = 0
    declare_length: bool = True
    redirect: str | None = None
    redirect_status: int = 302
    always_not_modified: bool = False
    trickle_s: float = 0.0


@dataclass
class _State:
    routes: dict[str, Route] = field(default_factory=dict)
    downloads: Counter[str] = field(default_factory=Counter)
    not_modified: Counter[str] = field(default_factory=Counter)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FeedHttpServer:
    """An HTTP server on a loopback address with a free port, serving ``routes``.

    Args:
        host: the loopback address to listen on.
    """

    def __init__(self, host: str = LOOPBACK) -> None:
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FeedHttpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    @property
    def url(self) -> str:
        """Base URL without a trailing slash."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, path: str, route: Route) -> str:
        """Serve ``route`` at ``path`` and return its full URL."""
        with self.state.lock:
            self.state.routes[path] = route
        return f"{self.url}{path}"

    def downloads(self, path: str) -> int:
        """Return how many times the full body of ``path`` was sent."""
        return self.state.downloads[path]

    def not_modified(self, path: str) -> int:
        """Return how many 304 responses ``path`` received."""
        return self.state.not_modified[path]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Headers and query of every request, in arrival order."""
        return self.state.requests


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = dict(part.split("=", 1) for part in query.split("&") if "=" in part)
        with self.state.lock:
            self.state.requests.append(
                {"path": path, "headers": dict(self.headers), "query": params}
            )
            route = self.state.routes.get(path)
            if route is not None and route.failures > 0:
                route.failures -= 1
                self._send_empty(503)
                return
        if route is None:
            self._send_empty(404)
            return
        if route.redirect is not None:
            self.send_response(route.redirect_status)
            self.send_header("Location", route.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self._authorised(route, params):
            self._send_empty(401)
            return
        if route.always_not_modified or self._unchanged(route):
            with self.state.lock:
                self.state.not_modified[path] += 1
            self._send_empty(304, route)
            return
        self._send_body(path, route)

    def _authorised(self, route: Route, params: dict[str, str]) -> bool:
        given = self.headers.get("Authorization", "")
        if route.basic is not None:
            expected = base64.b64encode(":".join(route.basic).encode()).decode()
            if given != f"Basic {expected}":
                return False
        if route.bearer is not None and given != f"Bearer {route.bearer}":
            return False
        if route.header is not None and self.headers.get(route.header[0]) != route.header[1]:
            return False
        return route.query is None or params.get(route.query[0]) == route.query[1]

    def _unchanged(self, route: Route) -> bool:
        if route.etag is not None and self.headers.get("If-None-Match") == route.etag:
            return True
        since = self.headers.get("If-Modified-Since")
        return route.last_modified is not None and since == route.last_modified

    def _send_empty(self, status: int, route: Route | None = None) -> None:
        self.send_response(status)
        if route is not None and route.etag:
            self.send_header("ETag", route.etag)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_body(self, path: str, route: Route) -> None:
        body = gzip.compress(route.body) if route.gzip_encoding else route.body
        self.send_response(200)
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)
        if route.gzip_encoding:
            self.send_header("Content-Encoding", "gzip")
        if route.declare_length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        with self.state.lock:
            self.state.downloads[path] += 1
        if route.delay_s:
            time.sleep(route.delay_s)
        if route.cut_after is not None:
            self.wfile.write(body[: route.cut_after])
            self.wfile.flush()
            self.close_connection = True
            return
        if route.trickle_s:
            self._trickle(body, route.trickle_s)
            return
        self.wfile.write(body)

    def _trickle(self, body: bytes, delay_s: float) -> None:
        try:
            for index in range(len(body)):
                time.sleep(delay_s)
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up on the slow body, which is what the tests expect.
            self.close_connection = True


def etag_of(body: bytes) -> str:
    """Return a strong ETag for a body."""
    return f'"{hashlib.sha256(body).hexdigest()[:16]}"'


# SFTP -----------------------------------------------------------------------


class FeedSftpServer:
    """An asyncssh SFTP server on 127.0.0.1 with a free port and ``root`` as its file root.

    Args:
        root: folder the server exposes as ``/``.
        username: the one accepted user.
        password: that user's password.
    """

    def __init__(self, root: Path, *, username: str, password: str) -> None:
        self.root = root
        self.username = username
        self.password = password
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.port = 0
        self.logins = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._acceptor: asyncssh.SSHAcceptor | None = None

    def __enter__(self) -> FeedSftpServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._acceptor = future.result(timeout=10)
        self.port = self._acceptor.get_port()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._acceptor is not None:
            acceptor = self._acceptor

            async def stop() -> None:
                acceptor.close()
                await acceptor.wait_closed()

            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def known_hosts_line(self) -> str:
        """Return the known_hosts line for this server, as ssh-keyscan prints it."""
        public = self.host_key.export_public_key("openssh").decode().strip()
        return f"[{LOOPBACK}]:{self.port} {public}\n"

    async def _start(self) -> asyncssh.SSHAcceptor:
        server = self

        class Login(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                ok = username == server.username and password == server.password
                if ok:
                    server.logins += 1
                return ok

        def sftp(channel: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
            return asyncssh.SFTPServer(channel, chroot=str(server.root).encode())

        return await asyncssh.create_server(
            Login,
            LOOPBACK,
            0,
            server_host_keys=[self.host_key],
            sftp_factory=sftp,
            allow_scp=False,
        )


__all__ = ["LOOPBACK", "OTHER_LOOPBACK", "FeedHttpServer", "FeedSftpServer", "Route", "etag_of"]
