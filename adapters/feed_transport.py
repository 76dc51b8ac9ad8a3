"""Download a supplier feed over HTTP(S) or SFTP, unpack it, and cache its last result.

The download layer of the ``feed`` adapter. It knows nothing about the feed's
format: it leaves the body in a local file and says whether it changed since
the last read.

* HTTP sends ``If-None-Match`` and ``If-Modified-Since`` from the last good read.
  A ``304 Not Modified`` means the previous result is used again.
* SFTP compares the remote file's modification time and size with the last read.
* Bodies are limited to ``max_bytes`` while they stream, before and after
  decompression, so an oversized or gzip-bomb feed is rejected early. A gzip
  body with several members (``cat a.gz b.gz``) is unpacked whole, as
  ``gzip -d`` does.
* One try of a download is limited to ``total_timeout_s`` from the request to
  the last byte, so a body that trickles in slowly cannot hold the job.
* Redirects are followed only within the configured URL's origin (scheme, host
  and port), so the auth secret never reaches another host. A redirect to
  another origin, including https to http, is an error that names the target.
* A body shorter than its ``Content-Length`` or SFTP file size, a truncated gzip
  stream and a zip without its central directory are errors, never partial data.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pandas as pd
from pydantic import Field, PositiveInt, field_validator, model_validator

from adapters.base import AdapterOptions, Rejection, SourceResult
from sync.errors import SourceError

log = logging.getLogger("eyekiosk_sync.adapters.feed")

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_READ_TIMEOUT_S = 60.0
DEFAULT_TOTAL_TIMEOUT_S = 600.0
DEFAULT_ATTEMPTS = 3
DEFAULT_RETRY_BACKOFF_S = 1.0
MAX_RETRY_DELAY_S = 30.0
DEFAULT_SFTP_PORT = 22
CHUNK_BYTES = 1 << 16
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
# Query parameters whose values are replaced by *** wherever a URL is shown.
SECRET_QUERY_NAMES = frozenset(
    {
        "key",
        "apikey",
        "api_key",
        "token",
        "access_token",
        "auth",
        "password",
        "secret",
        "signature",
        "sig",
    }
)
REDACTED = "***"

Compression = Literal["auto", "none", "gzip", "zip"]
T = TypeVar("T")


# Secrets --------------------------------------------------------------------


def read_secret(
    env: str | None, file: Path | None, *, option: str, config_dir: Path, source: str = "feed"
) -> str:
    """Read a secret from an environment variable or a file, never from the TOML itself.

    Args:
        env: name of the environment variable, or None.
        file: path of a file that contains only the secret; relative to ``config_dir``.
        option: the option the secret is for, named in errors (never the value).
        config_dir: folder of the configuration file.
        source: the source's description, for errors.

    Returns:
        The secret with surrounding whitespace removed.

    Raises:
        SourceError: when the variable is unset or empty, or the file is missing or empty.
    """
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise SourceError(
                f"the environment variable {env} for {option} is not set or empty. Set it in "
                f"the service's environment (for systemd, an EnvironmentFile).",
                source=source,
            )
        return value
    if file is None:
        raise SourceError(f"{option} has no _env or _file option", source=source)
    path = (config_dir / file).expanduser()
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise SourceError(
            f"cannot read the secret file {path} for {option}: {error.strerror or error}. "
            f"Check the path and that the service user may read it.",
            source=source,
        ) from error
    if not value:
        raise SourceError(f"the secret file {path} for {option} is empty", source=source)
    return value


def _check_one_secret(env: str | None, file: Path | None, prefix: str) -> None:
    if env is not None and file is not None:
        raise ValueError(f"set {prefix}_env or {prefix}_file, not both")


def redact_url(url: str | httpx.URL, extra_names: frozenset[str] = frozenset()) -> str:
    """Return the URL with secret query values and any user info replaced by ``***``.

    Args:
        url: the URL to show.
        extra_names: further query parameter names to redact, compared ignoring case.
    """
    parts = urlsplit(str(url))
    names = SECRET_QUERY_NAMES | {name.lower() for name in extra_names}
    query = urlencode(
        [
            (name, REDACTED if name.lower() in names else value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class _RedactHttpxUrls(logging.Filter):
    """Redact secret query values in the request lines that httpx logs at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, httpx.URL) for arg in record.args
        ):
            record.args = tuple(
                redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


# httpx logs "HTTP Request: GET <full URL>" at INFO, query string included.
if not any(isinstance(f, _RedactHttpxUrls) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_RedactHttpxUrls())


# Options --------------------------------------------------------------------


class HttpAuthOptions(AdapterOptions):
    """How the feed's HTTP requests authenticate. The secret comes from the environment or a file.

    Attributes:
        type: "basic" (username and password), "bearer" (``Authorization: Bearer``
            token), "header" (a header named ``name``) or "query" (a query
            parameter named ``name``).
        username: the user name for "basic"; not a secret.
        name: the header name for "header", the query parameter name for "query".
        secret_env: environment variable that contains the password, token or key.
        secret_file: file that contains only the password, token or key.
    """

    type: Literal["basic", "bearer", "header", "query"]
    username: str | None = None
    name: str | None = None
    secret_env: str | None = None
    secret_file: Path | None = None

    @model_validator(mode="after")
    def _check_fields(self) -> HttpAuthOptions:
        _check_one_secret(self.secret_env, self.secret_file, "secret")
        if self.secret_env is None and self.secret_file is None:
            raise ValueError("set secret_env or secret_file; the secret is never put in TOML")
        if self.type == "basic" and not self.username:
            raise ValueError('type = "basic" needs username')
        if self.type in ("header", "query") and not self.name:
            raise ValueError(f'type = "{self.type}" needs name, the header or parameter name')
        return self


class SftpOptions(AdapterOptions):
    """Where the feed file lies on an SFTP server and how to log in.

    Attributes:
        host: server name or address.
        port: SSH port.
        username: login name.
        path: the feed file on the server, e.g. ``/outgoing/stock.csv``.
        password_env: environment variable that contains the password.
        password_file: file that contains only the password.
        private_key_file: OpenSSH private key file, instead of or beside a password.
        passphrase_env: environment variable with the key's passphrase, if it has one.
        passphrase_file: file that contains only the key's passphrase.
        known_hosts: OpenSSH known_hosts file that must list the server's host key.
        insecure_skip_host_key_check: accept any host key. This allows a
            man-in-the-middle to read the login and change the feed, so every
            read logs a warning.
    """

    host: str
    port: int = Field(default=DEFAULT_SFTP_PORT, ge=1, le=65535)
    username: str
    path: str
    password_env: str | None = None
    password_file: Path | None = None
    private_key_file: Path | None = None
    passphrase_env: str | None = None
    passphrase_file: Path | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts")
    insecure_skip_host_key_check: bool = False

    @model_validator(mode="after")
    def _check_login(self) -> SftpOptions:
        _check_one_secret(self.password_env, self.password_file, "password")
        _check_one_secret(self.passphrase_env, self.passphrase_file, "passphrase")
        has_password = self.password_env is not None or self.password_file is not None
        if not has_password and self.private_key_file is None:
            raise ValueError("set password_env, password_file or private_key_file")
        return self


class TransferOptions(AdapterOptions):
    """Limits of one download, shared by HTTP and SFTP.

    Attributes:
        max_bytes: largest body accepted, counted on the wire and again after
            decompression.
        connect_timeout_s: seconds to wait for a connection.
        read_timeout_s: seconds to wait for each chunk of data.
        total_timeout_s: seconds one try may take from the request to the last
            byte (HTTP) or from connecting to the last byte (SFTP). A try that
            takes longer fails and is not retried.
        attempts: tries per read; 5xx responses, 429 and network errors are retried.
        retry_backoff_s: wait before the second try; it doubles for each further try.
        compression: "auto" detects gzip and zip by their first bytes; "none",
            "gzip" or "zip" force one. A ``Content-Encoding: gzip`` response is
            always decoded.
        zip_member: the file to read from a zip archive. Without it the archive
            must contain exactly one file.
    """

    max_bytes: PositiveInt = DEFAULT_MAX_BYTES
    connect_timeout_s: float = Field(default=DEFAULT_CONNECT_TIMEOUT_S, gt=0)
    read_timeout_s: float = Field(default=DEFAULT_READ_TIMEOUT_S, gt=0)
    total_timeout_s: float = Field(default=DEFAULT_TOTAL_TIMEOUT_S, gt=0)
    attempts: PositiveInt = DEFAULT_ATTEMPTS
    retry_backoff_s: float = Field(default=DEFAULT_RETRY_BACKOFF_S, ge=0)
    compression: Compression = "auto"
    zip_member: str | None = None

    @field_validator("zip_member")
    @classmethod
    def _check_member(cls, member: str | None) -> str | None:
        if member is not None and not member.strip():
            raise ValueError("zip_member is empty; leave it out to read the only file")
        return member


# Downloads ------------------------------------------------------------------


@dataclass(slots=True)
class Download:
    """One fetch of the feed.

    Attributes:
        path: the body as received (possibly compressed); None when not modified.
        validators: what identifies this version for the next conditional fetch:
            ``etag`` and ``last_modified`` for HTTP, ``mtime`` and ``size`` for SFTP.
        not_modified: True when the server said the feed is as it was last time.
        content_encoding: the HTTP ``Content-Encoding``, lower case, or None.
    """

    path: Path | None
    validators: dict[str, Any] = field(default_factory=dict)
    not_modified: bool = False
    content_encoding: str | None = None


class _RetryableError(Exception):
    """A failure that another try may not have: 5xx, 429, a network error, a cut body."""


def _too_large(limit: int, subject: str, source: str) -> SourceError:
    return SourceError(
        f"{subject} is larger than max_bytes = {limit} bytes, so it was not read. "
        f"Raise max_bytes in the source options if the feed is really this large.",
        source=source,
    )


def _too_slow(limit: float, source: str) -> SourceError:
    return SourceError(
        f"the download took longer than total_timeout_s = {limit:g} seconds, so it was "
        f"stopped. The server may be sending the feed very slowly. Raise total_timeout_s "
        f"in the source options if the feed really takes this long.",
        source=source,
    )


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Return the URL's origin: scheme, host and port, with the scheme's default port filled in."""
    return url.scheme, url.host, url.port or DEFAULT_PORTS.get(url.scheme)


def show_origin(url: httpx.URL) -> str:
    """Return ``scheme://host:port`` of the URL, without user info, path or query."""
    scheme, host, port = origin(url)
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}" if port is not None else f"{scheme}://{host}"


class HttpFetcher:
    """Fetch a feed URL with auth, limits, retries and conditional requests.

    Args:
        url: the feed URL, without secrets (a query key goes in ``auth``).
        transfer: limits and retries.
        auth: how to authenticate, or None.
        headers: extra request headers that are not secret.
        config_dir: folder that relative secret files resolve against.
        source: the source's description, for errors.
        sleep: called with the delay in seconds between tries; tests pass a stub.
        transport: an httpx transport to use instead of the network, for tests.
    """

    def __init__(
        self,
        url: str,
        *,
        transfer: TransferOptions,
        auth: HttpAuthOptions | None,
        headers: dict[str, str],
        config_dir: Path,
        source: str,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.transfer = transfer
        self.auth = auth
        self.headers = headers
        self.config_dir = config_dir
        self.source = source
        self.sleep = sleep
        self.transport = transport

    def fetch(self, destination: Path, validators: dict[str, Any]) -> Download:
        """Download the feed to ``destination`` unless it is unchanged.

        Args:
            destination: file that receives the body; replaced if it exists.
            validators: ``etag`` and ``last_modified`` from the last good read, or empty.

        Returns:
            The download, or one with ``not_modified`` set after a 304.

        Raises:
            SourceError: on a 4xx, on too large a body, and when every try failed.
        """
        request_headers, params, auth = self._authenticate()
        request_headers["Accept-Encoding"] = "gzip, identity"
        if validators.get("etag"):
            request_headers["If-None-Match"] = str(validators["etag"])
        if validators.get("last_modified"):
            request_headers["If-Modified-Since"] = str(validators["last_modified"])

        timeout = httpx.Timeout(
            self.transfer.read_timeout_s, connect=self.transfer.connect_timeout_s
        )
        # Redirects are followed by _fetch_once, which keeps them within the origin.
        with httpx.Client(
            timeout=timeout, follow_redirects=False, transport=self.transport, auth=auth
        ) as client:
            return retry_call(
                lambda: self._fetch_once(client, destination, request_headers, params),
                transfer=self.transfer,
                sleep=self.sleep,
                source=self.source,
            )

    def _authenticate(self) -> tuple[dict[str, str], dict[str, str], httpx.Auth | None]:
        headers = dict(self.headers)
        params: dict[str, str] = {}
        if self.auth is None:
            return headers, params, None
        secret = read_secret(
            self.auth.secret_env,
            self.auth.secret_file,
            option=f"auth ({self.auth.type})",
            config_dir=self.config_dir,
            source=self.source,
        )
        match self.auth.type:
            case "basic":
                return headers, params, httpx.BasicAuth(self.auth.username or "", secret)
            case "bearer":
                headers["Authorization"] = f"Bearer {secret}"
            case "header":
                headers[self.auth.name or ""] = secret
            case "query":
                params[self.auth.name or ""] = secret
        return headers, params, None

    def _fetch_once(
        self,
        client: httpx.Client,
        destination: Path,
        headers: dict[str, str],
        params: dict[str, str],
    ) -> Download:
        # NOTE: the deadline is checked between redirects and body chunks, so response
        # headers that trickle in are bounded only by read_timeout_s per read.
        deadline = time.monotonic() + self.transfer.total_timeout_s
        url = httpx.URL(self.url)
        try:
            for _ in range(MAX_REDIRECTS + 1):
                with client.stream("GET", url, headers=headers, params=params) as response:
                    where = f"GET {redact_url(response.request.url, self._secret_names())}"
                    log.info("feed.http_response request=%r status=%d", where, response.status_code)
                    target = self._redirect_target(response, where)
                    if target is None:
                        return self._receive(response, destination, where, deadline)
                url = target
                if time.monotonic() > deadline:
                    raise _too_slow(self.transfer.total_timeout_s, self.source)
        except httpx.TimeoutException as error:
            raise _RetryableError(f"timed out ({type(error).__name__})") from error
        except httpx.RemoteProtocolError as error:
            raise _RetryableError(
                f"the server closed the connection before the whole response arrived, so the "
                f"feed was cut off ({error})"
            ) from error
        except httpx.TransportError as error:
            raise _RetryableError(f"the connection failed: {error}") from error
        raise SourceError(
            f"the server redirected more than {MAX_REDIRECTS} times. Set url to the feed's "
            f"final address.",
            source=self.source,
        )

    def _secret_names(self) -> frozenset[str]:
        return frozenset({self.auth.name}) if self.auth and self.auth.name else frozenset()

    def _redirect_target(self, response: httpx.Response, where: str) -> httpx.URL | None:
        """Return where a redirect response points, or None when the response is no redirect.

        Raises:
            SourceError: when the redirect leaves the configured URL's origin.
        """
        location = response.headers.get("Location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return None
        target = response.request.url.join(location)
        if origin(target) == origin(httpx.URL(self.url)):
            return target

        # Another origin may not see the auth secret, and the operator should know.
        if response.request.url.scheme == "https" and target.scheme != "https":
            problem = "from https to unencrypted http"
        else:
            problem = f"to another origin, {show_origin(target)}"
        raise SourceError(
            f"{where} was redirected ({response.status_code}) {problem}. Redirects are "
            f"followed only within {show_origin(httpx.URL(self.url))}, so that the feed's "
            f"credentials go nowhere else. Set url to the feed's final address.",
            source=self.source,
        )

    def _receive(
        self, response: httpx.Response, destination: Path, where: str, deadline: float
    ) -> Download:
        if response.status_code == httpx.codes.NOT_MODIFIED:
            return Download(path=None, not_modified=True)
        self._check_status(response, where)
        encoding = response.headers.get("Content-Encoding", "").strip().lower() or None
        if encoding not in (None, "identity", "gzip", "x-gzip"):
            raise SourceError(
                f"the server sent Content-Encoding {encoding!r}, which is not supported; "
                f"only gzip is",
                source=self.source,
            )
        self._save_body(response, destination, deadline)
        return Download(
            path=destination,
            validators={
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            },
            content_encoding=None if encoding == "identity" else encoding,
        )

    def _check_status(self, response: httpx.Response, where: str) -> None:
        status = response.status_code
        if status >= 500 or status == httpx.codes.TOO_MANY_REQUESTS:
            raise _RetryableError(f"{where} failed with status {status} {response.reason_phrase}")
        if status >= 400:
            hint = (
                "Check the auth options and the secret."
                if status in (401, 403)
                else "Check the url option."
            )
            raise SourceError(
                f"{where} failed with status {status} {response.reason_phrase}. {hint}",
                source=self.source,
            )
        if status != httpx.codes.OK:
            raise SourceError(
                f"{where} returned status {status} {response.reason_phrase}, not 200 OK",
                source=self.source,
            )

    def _save_body(self, response: httpx.Response, destination: Path, deadline: float) -> None:
        limit = self.transfer.max_bytes
        declared = response.headers.get("Content-Length")
        expected = int(declared) if declared and declared.isdigit() else None
        if expected is not None and expected > limit:
            raise _too_large(limit, f"the feed ({expected} bytes by Content-Length)", self.source)

        received = 0
        with destination.open("wb") as handle:
            for chunk in response.iter_raw():
                received += len(chunk)
                if received > limit:
                    raise _too_large(limit, "the feed", self.source)
                if time.monotonic() > deadline:
                    raise _too_slow(self.transfer.total_timeout_s, self.source)
                handle.write(chunk)
        if expected is not None and received != expected:
            raise _RetryableError(
                f"the response ended after {received} of {expected} bytes (Content-Length); "
                f"the feed was cut off"
            )


def retry_call(
    call: Callable[[], T],
    *,
    transfer: TransferOptions,
    sleep: Callable[[float], None],
    source: str,
) -> T:
    """Call ``call`` up to ``transfer.attempts`` times while it raises ``_RetryableError``.

    The wait doubles after each try, from ``retry_backoff_s`` up to 30 seconds.

    Raises:
        SourceError: with the last failure, when every try failed.
    """
    for attempt in range(1, transfer.attempts + 1):
        try:
            return call()
        except _RetryableError as error:
            if attempt == transfer.attempts:
                raise SourceError(
                    f"{error}. Gave up after {attempt} {'try' if attempt == 1 else 'tries'}; "
                    f"the next cycle tries again.",
                    source=source,
                ) from error.__cause__ or error
            delay = min(transfer.retry_backoff_s * 2 ** (attempt - 1), MAX_RETRY_DELAY_S)
            log.warning(
                "feed.retry source=%s attempt=%d delay_s=%.1f reason=%s",
                source,
                attempt,
                delay,
                error,
            )
            sleep(delay)
    raise AssertionError("unreachable: attempts is at least 1")


# SFTP -----------------------------------------------------------------------


class SftpFetcher:
    """Fetch a feed file over SFTP with host-key checking and a conditional fetch.

    Args:
        options: server, login and path.
        transfer: limits and retries.
        config_dir: folder that relative key, known_hosts and secret files resolve against.
        source: the source's description, for errors.
        sleep: called with the delay in seconds between tries.
    """

    def __init__(
        self,
        options: SftpOptions,
        *,
        transfer: TransferOptions,
        config_dir: Path,
        source: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = options
        self.transfer = transfer
        self.config_dir = config_dir
        self.source = source
        self.sleep = sleep

    @property
    def known_hosts(self) -> Path:
        """The known_hosts file, resolved against the configuration folder."""
        return (self.config_dir / self.options.known_hosts.expanduser()).resolve()

    def fetch(self, destination: Path, validators: dict[str, Any]) -> Download:
        """Download the remote file to ``destination`` unless its mtime and size are unchanged.

        Raises:
            SourceError: on an unknown host key, a failed login, a missing file,
                too large a file, and when every try failed.
        """
        connect_options = self._connect_options()
        return retry_call(
            lambda: _run_coroutine(self._fetch_in_time(connect_options, destination, validators)),
            transfer=self.transfer,
            sleep=self.sleep,
            source=self.source,
        )

    def _connect_options(self) -> dict[str, Any]:
        import asyncssh

        options = self.options
        connect: dict[str, Any] = {
            "host": options.host,
            "port": options.port,
            "username": options.username,
            "connect_timeout": self.transfer.connect_timeout_s,
            # Only the configured credentials: no agent and no keys from ~/.ssh.
            "agent_path": None,
            "client_keys": None,
            "password": None,
        }
        if options.password_env is not None or options.password_file is not None:
            connect["password"] = read_secret(
                options.password_env,
                options.password_file,
                option="sftp.password",
                config_dir=self.config_dir,
                source=self.source,
            )
        if options.private_key_file is not None:
            passphrase = None
            if options.passphrase_env is not None or options.passphrase_file is not None:
                passphrase = read_secret(
                    options.passphrase_env,
                    options.passphrase_file,
                    option="sftp.passphrase",
                    config_dir=self.config_dir,
                    source=self.source,
                )
            key_path = (self.config_dir / options.private_key_file.expanduser()).resolve()
            try:
                connect["client_keys"] = [asyncssh.read_private_key(key_path, passphrase)]
            except (OSError, asyncssh.KeyImportError) as error:
                raise SourceError(
                    f"cannot read the private key {key_path}: {error}. Check "
                    f"private_key_file and the passphrase.",
                    source=self.source,
                ) from error

        if options.insecure_skip_host_key_check:
            log.warning(
                "feed.sftp_host_key_unchecked source=%s host=%s port=%d: the server's host "
                "key is not checked, so a man-in-the-middle could read the login and change "
                "the feed. Add the key to known_hosts and remove insecure_skip_host_key_check.",
                self.source,
                options.host,
                options.port,
            )
            connect["known_hosts"] = None
        else:
            if not self.known_hosts.is_file():
                raise SourceError(
                    f"the known_hosts file {self.known_hosts} does not exist. Create it "
                    f"with the server's key: {self._keyscan_hint()}",
                    source=self.source,
                )
            connect["known_hosts"] = str(self.known_hosts)
        return connect

    def _keyscan_hint(self) -> str:
        port = f"-p {self.options.port} " if self.options.port != DEFAULT_SFTP_PORT else ""
        return (
            f"ssh-keyscan {port}{self.options.host} >> {self.known_hosts} "
            f"(check the printed key with the supplier before trusting it)"
        )

    async def _fetch_in_time(
        self, connect_options: dict[str, Any], destination: Path, validators: dict[str, Any]
    ) -> Download:
        limit = self.transfer.total_timeout_s
        try:
            async with asyncio.timeout(limit):
                return await self._fetch_once(connect_options, destination, validators)
        except TimeoutError as error:
            # Timeouts inside _fetch_once become _RetryableError, so this one is the deadline.
            raise _too_slow(limit, self.source) from error

    async def _fetch_once(
        self, connect_options: dict[str, Any], destination: Path, validators: dict[str, Any]
    ) -> Download:
        import asyncssh

        path = self.options.path
        try:
            async with (
                asyncssh.connect(**connect_options) as connection,
                connection.start_sftp_client() as sftp,
            ):
                attributes = await sftp.stat(path)
                mtime, size = attributes.mtime, attributes.size
                log.info("feed.sftp_stat source=%s mtime=%s size=%s", self.source, mtime, size)
                if size is not None and size > self.transfer.max_bytes:
                    raise _too_large(
                        self.transfer.max_bytes, f"the remote file ({size} bytes)", self.source
                    )
                current = {"mtime": mtime, "size": size}
                if validators and validators == current:
                    return Download(path=None, validators=current, not_modified=True)
                received = await self._copy(sftp, path, destination)
        except asyncssh.HostKeyNotVerifiable as error:
            raise SourceError(
                f"the host key of {self.options.host} port {self.options.port} is not in "
                f"{self.known_hosts} ({error.reason}). If the key is right, add it: "
                f"{self._keyscan_hint()}",
                source=self.source,
            ) from error
        except asyncssh.PermissionDenied as error:
            raise SourceError(
                f"the server rejected the login of {self.options.username!r}. Check username, "
                f"the password or private key.",
                source=self.source,
            ) from error
        except asyncssh.SFTPNoSuchFile as error:
            raise SourceError(
                f"the remote file {path} was not found. Check sftp.path.", source=self.source
            ) from error
        except asyncssh.SFTPPermissionDenied as error:
            raise SourceError(
                f"the server does not let {self.options.username!r} read {path}",
                source=self.source,
            ) from error
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise _RetryableError(f"the SFTP transfer failed: {error}") from error

        if size is not None and received != size:
            raise _RetryableError(
                f"the transfer ended after {received} of {size} bytes; the file was cut off "
                f"or changed while it was read"
            )
        return Download(path=destination, validators=current)

    async def _copy(self, sftp: Any, path: str, destination: Path) -> int:
        limit = self.transfer.max_bytes
        received = 0
        async with sftp.open(path, "rb") as remote:
            with destination.open("wb") as handle:
                while True:
                    chunk = await asyncio.wait_for(
                        remote.read(CHUNK_BYTES * 4), self.transfer.read_timeout_s
                    )
                    if not chunk:
                        return received
                    received += len(chunk)
                    if received > limit:
                        raise _too_large(limit, "the remote file", self.source)
                    handle.write(chunk)


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end, in a new thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, name="feed-sftp")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


# Unpacking ------------------------------------------------------------------


def unpack(
    download: Path,
    destination: Path,
    *,
    transfer: TransferOptions,
    content_encoding: str | None,
    source: str,
) -> Path:
    """Decompress the body into ``destination``, or return ``download`` when it is plain.

    gzip is detected by ``Content-Encoding`` or its first two bytes, zip by its
    first four bytes, unless ``compression`` forces one. A gzip body inside a
    zip member is not unpacked a second time.

    Raises:
        SourceError: when the gzip stream or the zip archive is cut off or invalid,
            the zip member is missing or ambiguous, or the unpacked size exceeds
            ``max_bytes``.
    """
    with download.open("rb") as handle:
        head = handle.read(4)
    kind = transfer.compression
    if kind == "auto":
        if content_encoding in ("gzip", "x-gzip") or head.startswith(GZIP_MAGIC):
            kind = "gzip"
        elif head.startswith(ZIP_MAGIC):
            kind = "zip"
        else:
            kind = "none"
    if content_encoding in ("gzip", "x-gzip") and kind == "none":
        kind = "gzip"

    if kind == "gzip":
        _gunzip(download, destination, limit=transfer.max_bytes, source=source)
        return destination
    if kind == "zip":
        _unzip(download, destination, transfer=transfer, source=source)
        return destination
    return download


def _gunzip(source_path: Path, destination: Path, *, limit: int, source: str) -> None:
    """Unpack every member of a gzip file, as ``gzip -d`` does, within ``limit`` bytes in total."""
    decompressor = _gzip_member()
    written = 0
    try:
        with source_path.open("rb") as compressed, destination.open("wb") as plain:
            while chunk := compressed.read(CHUNK_BYTES):
                while chunk:
                    if decompressor.eof:
                        # Another member follows; zero bytes pad some files between members.
                        chunk = chunk.lstrip(b"\0")
                        if not chunk:
                            break
                        decompressor = _gzip_member()
                    data = decompressor.decompress(chunk, CHUNK_BYTES * 16)
                    if decompressor.eof:
                        chunk = decompressor.unused_data
                    else:
                        chunk = decompressor.unconsumed_tail
                    written += len(data)
                    if written > limit:
                        raise _too_large(limit, "the unpacked feed", source)
                    plain.write(data)
    except zlib.error as error:
        raise SourceError(f"is not valid gzip data: {error}", source=source) from error
    if not decompressor.eof:
        raise SourceError(
            "the gzip stream ends before its end marker, so the feed was cut off. Nothing "
            "from it was used.",
            source=source,
        )


def _gzip_member() -> Any:
    # wbits 16 + MAX_WBITS accepts the gzip header and checks its CRC and length.
    return zlib.decompressobj(16 + zlib.MAX_WBITS)


def _unzip(
    archive_path: Path, destination: Path, *, transfer: TransferOptions, source: str
) -> None:
    try:
        with zipfile.ZipFile(archive_path) as archive:
            member = _zip_member(archive, transfer.zip_member, source)
            if member.file_size > transfer.max_bytes:
                raise _too_large(transfer.max_bytes, f"zip member {member.filename!r}", source)
            written = 0
            with archive.open(member) as packed, destination.open("wb") as plain:
                while chunk := packed.read(CHUNK_BYTES):
                    written += len(chunk)
                    if written > transfer.max_bytes:
                        raise _too_large(transfer.max_bytes, "the unpacked feed", source)
                    plain.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise SourceError(
            f"is not a complete zip archive ({error}); it may have been cut off. Nothing "
            f"from it was used.",
            source=source,
        ) from error


def _zip_member(archive: zipfile.ZipFile, requested: str | None, source: str) -> zipfile.ZipInfo:
    files = [info for info in archive.infolist() if not info.is_dir()]
    names = ", ".join(repr(info.filename) for info in files) or "none"
    if requested is not None:
        for info in files:
            if info.filename == requested:
                return info
        raise SourceError(
            f"the zip archive has no member {requested!r} (members: {names}). Fix zip_member.",
            source=source,
        )
    if len(files) != 1:
        raise SourceError(
            f"the zip archive has {len(files)} files ({names}). Set zip_member to the one to read.",
            source=source,
        )
    return files[0]


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES * 16):
            digest.update(chunk)
    return digest.hexdigest()


# Cache ----------------------------------------------------------------------


class FeedCache:
    """The last good read of one feed: validators, body hash and normalised result.

    Files in ``<state_dir>/feeds/``: ``<name>.json`` (validators, hash,
    rejections, total rows) and ``<name>.rows.parquet`` (the normalised rows).
    The JSON is written last, so a crash between the two leaves the old JSON
    pointing at a hash that no longer matches, and the next read parses again.

    Args:
        folder: the ``feeds`` folder in the state directory.
        name: file stem for this job and source, e.g. ``shop-stock.csv-3f2a9c1b``.
        fingerprint: digest of the options that shape the result. A cache saved
            with other options is ignored, so a changed column or key type
            takes effect on the next read even when the feed is unchanged.
    """

    def __init__(self, folder: Path, name: str, *, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint
        self.state_path = folder / f"{name}.json"
        self.rows_path = folder / f"{name}.rows.parquet"

    def load_state(self) -> dict[str, Any]:
        """Return the stored state, or an empty dict when there is none or it is unreadable."""
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("feed.cache_unreadable path=%s error=%s", self.state_path, error)
            return {}
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            return {}
        return state

    def validators(self) -> dict[str, Any]:
        """Return the conditional-fetch validators, empty when no cached result is usable."""
        state = self.load_state()
        if not self.rows_path.is_file() or "sha256" not in state:
            return {}
        validators = state.get("validators")
        return dict(validators) if isinstance(validators, dict) else {}

    def load_result(self, *, sha256: str | None = None) -> SourceResult | None:
        """Return the cached result, or None when missing, unreadable or for another body.

        Args:
            sha256: when given, the cached result is returned only if it was
                parsed from a body with this hash.
        """
        state = self.load_state()
        if not state or (sha256 is not None and state.get("sha256") != sha256):
            return None
        try:
            rows = pd.read_parquet(self.rows_path)
        except (OSError, ValueError) as error:
            log.warning("feed.cache_unreadable path=%s error=%s", self.rows_path, error)
            return None
        rejections = [Rejection(**item) for item in state.get("rejections", [])]
        return SourceResult(
            rows=_normalised_dtypes(rows),
            rejections=rejections,
            total_rows=int(state.get("total_rows", len(rows))),
        )

    def save(self, result: SourceResult, *, validators: dict[str, Any], sha256: str) -> None:
        """Store the result of a good read with the validators of its body."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _replaced(self.rows_path) as temporary:
            result.rows.to_parquet(temporary, index=False)
        state = {
            "fingerprint": self.fingerprint,
            "validators": {k: v for k, v in validators.items() if v is not None},
            "sha256": sha256,
            "total_rows": result.total_rows,
            "rejections": [
                {"location": r.location, "reason": r.reason, "key": r.key}
                for r in result.rejections
            ],
            "saved_at": time.time(),
        }
        with _replaced(self.state_path) as temporary:
            temporary.write_text(json.dumps(state), encoding="utf-8")


@contextlib.contextmanager
def _replaced(path: Path) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` atomically when the block succeeds."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _normalised_dtypes(rows: pd.DataFrame) -> pd.DataFrame:
    from adapters.base import KEY, PRICE_CENTS, QUANTITY
    from sync.keys import STRING_DTYPE

    return pd.DataFrame(
        {
            KEY: rows[KEY].astype(STRING_DTYPE),
            QUANTITY: rows[QUANTITY].astype("Int64"),
            PRICE_CENTS: rows[PRICE_CENTS].astype("Int64"),
        }
    )


def cache_name(job: str, target: str) -> str:
    """Return a file stem for one job's feed: job, the feed's file name and a short hash."""
    base = Path(urlsplit(target).path).name or "feed"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", base)[:40]
    digest = hashlib.sha256(target.encode("utf-8")).hexdigest()[:8]
    return f"{job}-{safe}-{digest}"


__all__ = [
    "DEFAULT_MAX_BYTES",
    "Download",
    "FeedCache",
    "HttpAuthOptions",
    "HttpFetcher",
    "SftpFetcher",
    "SftpOptions",
    "TransferOptions",
    "cache_name",
    "file_sha256",
    "read_secret",
    "redact_url",
    "retry_call",
    "unpack",
]
