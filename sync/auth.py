"""`eyekiosk-sync auth login` and `auth status`: OAuth 2.1 authorization code flow with PKCE.

The login follows RFC 8252 for native apps. The redirect URI is a loopback
address, ``http://127.0.0.1:<port>/callback``, and the server accepts any port
for it. In the normal mode a small HTTP listener on that address receives the
redirect. In ``no_browser`` mode nothing listens. The operator approves on
another device, and then pastes back the redirect URL that the browser failed
to load. The code is exchanged with its PKCE S256 verifier (RFC 7636), and the
tokens go into the TokenStore.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import ipaddress
import logging
import queue
import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pydantic

from sync.errors import AuthError
from sync.models import DiscoveryDocument, TokenResponse, format_timestamp
from sync.tokens import StoredToken, TokenStore, oauth_error

logger = logging.getLogger("eyekiosk_sync.auth")

DISCOVERY_PATH = "/.well-known/openid-configuration"
DEFAULT_LOGIN_TIMEOUT = 300.0
DEFAULT_HTTP_TIMEOUT = 30.0
VERIFIER_BYTES = 48  # token_urlsafe(48) gives 64 characters, inside RFC 7636's 43 to 128.

SUCCESS_PAGE = (
    b"<!doctype html><title>eyekiosk-sync</title><p>Login complete. You can close this tab."
)
FAILURE_PAGE = b"<!doctype html><title>eyekiosk-sync</title><p>Login failed. See the terminal."


class LoginError(AuthError):
    """The login did not finish: denied, wrong state, no code, timeout, or a rejected code."""


@dataclass(frozen=True)
class OAuthClientConfig:
    """OAuth settings of the practice's Eyekiosk client.

    Attributes:
        base_url: scheme and host of the Partner API.
        client_id: OAuth client id.
        client_secret: secret for client_secret_post, or None for a public client.
        scopes: scopes to request.
        issuer: OpenID Connect issuer for discovery; ``base_url`` when None.
        authorization_endpoint: explicit endpoint; discovered when None.
        token_endpoint: explicit endpoint; discovered when None.
        redirect_host: loopback address of the redirect URI.
        redirect_port: port of the redirect URI; 0 picks a free one.
        redirect_path: path of the redirect URI.
        timeout: seconds for each HTTP call of discovery and the token exchange.
    """

    base_url: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    scopes: list[str] = field(default_factory=list)
    issuer: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    redirect_host: str = "127.0.0.1"
    redirect_port: int = 0
    redirect_path: str = "/callback"
    timeout: float = DEFAULT_HTTP_TIMEOUT

    def __post_init__(self) -> None:
        try:
            loopback = ipaddress.ip_address(self.redirect_host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(
                f"redirect_host must be a loopback IP address such as 127.0.0.1, "
                f"got {self.redirect_host!r}"
            )
        if not self.redirect_path.startswith("/"):
            raise ValueError(f"redirect_path must start with '/', got {self.redirect_path!r}")


@dataclass(frozen=True)
class OAuthEndpoints:
    """Authorization and token endpoint URLs of the server."""

    authorization_endpoint: str
    token_endpoint: str


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization request and the secrets that complete it.

    Attributes:
        url: the authorization URL the operator opens.
        redirect_uri: where the server sends the browser back to.
        state: random value that the redirect must return unchanged.
        code_verifier: PKCE secret whose S256 challenge is in ``url``.
    """

    url: str
    redirect_uri: str
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)


def discover_endpoints(config: OAuthClientConfig, http: httpx.Client) -> OAuthEndpoints:
    """Find the authorization and token endpoints.

    Explicit endpoints in ``config`` win. Otherwise the server's OpenID
    Connect discovery document at ``{issuer}/.well-known/openid-configuration``
    provides them.

    Raises:
        LoginError: discovery failed, returned an invalid document, named
            another issuer, or lacks PKCE S256.
    """
    if config.authorization_endpoint and config.token_endpoint:
        return OAuthEndpoints(config.authorization_endpoint, config.token_endpoint)

    issuer = (config.issuer or config.base_url).rstrip("/")
    url = issuer + DISCOVERY_PATH
    try:
        response = http.get(url)
    except httpx.TransportError as error:
        raise LoginError(f"OpenID discovery at {url} failed: {type(error).__name__}") from error
    if response.status_code != httpx.codes.OK:
        raise LoginError(f"OpenID discovery at {url} failed with status {response.status_code}")
    try:
        document = DiscoveryDocument.model_validate_json(response.content)
    except pydantic.ValidationError:
        raise LoginError(f"OpenID discovery at {url} returned an invalid document") from None

    if document.issuer.rstrip("/") != issuer:
        raise LoginError(
            f"OpenID discovery at {url} names the issuer {document.issuer!r}, expected {issuer!r}"
        )
    methods = document.code_challenge_methods_supported
    if methods and "S256" not in methods:
        raise LoginError(f"the server at {issuer} does not support PKCE S256 (it offers {methods})")

    return OAuthEndpoints(
        config.authorization_endpoint or document.authorization_endpoint,
        config.token_endpoint or document.token_endpoint,
    )


def code_challenge(verifier: str) -> str:
    """Compute the PKCE S256 challenge of ``verifier`` (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_authorization_request(
    config: OAuthClientConfig, authorization_endpoint: str, redirect_uri: str
) -> AuthorizationRequest:
    """Create a fresh state and PKCE verifier and the authorization URL that carries them."""
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(VERIFIER_BYTES)
    query = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(config.scopes),
        "state": state,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    separator = "&" if urlsplit(authorization_endpoint).query else "?"
    url = authorization_endpoint + separator + urlencode(query)
    return AuthorizationRequest(url, redirect_uri, state, verifier)


def parse_redirect(query: str | Mapping[str, list[str]], *, expected_state: str) -> str:
    """Check the query of the redirect and return the authorization code.

    Args:
        query: the query string, or its parsed form.
        expected_state: the state sent with the authorization request.

    Returns:
        The authorization code.

    Raises:
        LoginError: the server returned an error, the state does not match, or the code is missing.
    """
    values = parse_qs(query) if isinstance(query, str) else query

    def first(name: str) -> str | None:
        items = values.get(name)
        return items[0] if items else None

    # The state is checked first: an error redirect with a foreign state is not ours to report.
    state = first("state")
    if state is None or not secrets.compare_digest(state, expected_state):
        raise LoginError(
            "the state in the redirect does not match this login, so it may come from "
            "another login or a forged link; run the login again"
        )

    error = first("error")
    if error == "access_denied":
        raise LoginError("the authorization was denied on the consent page; run the login again")
    if error:
        description = (first("error_description") or "")[:200]
        raise LoginError(f"the authorization server returned the error {error!r}: {description}")
    code = first("code")
    if not code:
        raise LoginError("the redirect carries no authorization code; run the login again")
    return code


def exchange_code(
    config: OAuthClientConfig,
    endpoints: OAuthEndpoints,
    request: AuthorizationRequest,
    code: str,
    http: httpx.Client,
) -> StoredToken:
    """Exchange an authorization code for tokens.

    Args:
        config: client id, secret and requested scopes.
        endpoints: where to send the token request.
        request: the authorization request that produced the code.
        code: the authorization code from the redirect.
        http: client for the token request.

    Raises:
        LoginError: the token endpoint rejected the code or returned an invalid response.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": request.redirect_uri,
        "code_verifier": request.code_verifier,
        "client_id": config.client_id,
    }
    if config.client_secret:
        form["client_secret"] = config.client_secret

    try:
        response = http.post(endpoints.token_endpoint, data=form)
    except httpx.TransportError as error:
        raise LoginError(
            f"the token endpoint {endpoints.token_endpoint} is unreachable: {type(error).__name__}"
        ) from error
    if response.status_code != httpx.codes.OK:
        error_code, description = oauth_error(response)
        raise LoginError(
            f"the token endpoint rejected the authorization code with status "
            f"{response.status_code} ({error_code}: {description}); run the login again"
        )

    try:
        body = TokenResponse.model_validate_json(response.content)
    except pydantic.ValidationError:
        raise LoginError("the token endpoint returned an invalid token response") from None
    return StoredToken.from_response(
        body,
        client_id=config.client_id,
        token_endpoint=endpoints.token_endpoint,
        requested_scope=" ".join(config.scopes),
    )


def login(
    config: OAuthClientConfig,
    store: TokenStore,
    *,
    open_browser: bool = True,
    no_browser: bool = False,
    print_fn: Callable[[str], None] = print,
    input_fn: Callable[[str], str] = input,
    timeout: float = DEFAULT_LOGIN_TIMEOUT,
    follow_redirects_with: httpx.Client | None = None,
    http: httpx.Client | None = None,
) -> StoredToken:
    """Sign in through the browser and store the tokens.

    Args:
        config: the OAuth client settings.
        store: where the tokens go.
        open_browser: open the authorization URL with ``webbrowser`` when a browser is present.
        no_browser: start no listener and ask the operator to paste the redirect URL.
        print_fn: writes instructions for the operator.
        input_fn: reads the pasted redirect URL in ``no_browser`` mode.
        timeout: seconds to wait for the redirect on the listener.
        follow_redirects_with: when given, this client GETs the authorization
            URL and follows redirects, so a server that consents at once (the
            sandbox demo mode) sends the code to the listener with no browser.
        http: client for discovery and the token request; a new one when None.

    Returns:
        The stored token.

    Raises:
        LoginError: the flow failed, and the message gives the reason.
        ValueError: ``no_browser`` together with ``follow_redirects_with``.
    """
    if no_browser and follow_redirects_with is not None:
        raise ValueError("no_browser and follow_redirects_with exclude each other")

    with _http_client(http, config.timeout) as client:
        endpoints = discover_endpoints(config, client)

        if no_browser:
            port = config.redirect_port or _free_port(config.redirect_host)
            redirect_uri = _redirect_uri(config, port)
            request = build_authorization_request(
                config, endpoints.authorization_endpoint, redirect_uri
            )
            code = _paste_code(request, print_fn=print_fn, input_fn=input_fn)
        else:
            with _CallbackListener(config) as listener:
                request = build_authorization_request(
                    config, endpoints.authorization_endpoint, listener.redirect_uri
                )
                print_fn(f"Open this URL to sign in to Eyekiosk:\n\n    {request.url}\n")
                if follow_redirects_with is not None:
                    _follow_authorization(follow_redirects_with, request)
                elif open_browser:
                    _open_in_browser(request.url, print_fn)
                print_fn(
                    f"Waiting up to {timeout:.0f} s for the redirect to {request.redirect_uri}"
                )
                query = listener.wait(timeout)
            code = parse_redirect(query, expected_state=request.state)

        token = exchange_code(config, endpoints, request, code, client)

    store.save(token)
    logger.info(
        "signed in as client %s with scopes %s",
        token.client_id,
        token.scope,
        extra={"event": "login", "client_id": token.client_id, "scope": token.scope},
    )
    return token


def status(store: TokenStore, *, now: datetime | None = None) -> dict[str, Any]:
    """Describe the stored grant for `auth status`, without any token.

    Returns:
        ``logged_in``, and when logged in: ``client_id``, ``scopes`` (sorted),
        ``expires_at`` (ISO 8601 UTC), ``expired``, ``token_endpoint`` and
        ``has_refresh_token``.

    Raises:
        AuthError: the token file exists but is invalid.
    """
    token = store.load()
    if token is None:
        return {"logged_in": False, "token_file": str(store.path)}
    current = now or datetime.now(UTC)
    return {
        "logged_in": True,
        "token_file": str(store.path),
        "client_id": token.client_id,
        "scopes": sorted(token.scopes),
        "expires_at": format_timestamp(token.expires_at),
        "expired": token.expires_within(0, now=current),
        "token_endpoint": token.token_endpoint,
        "has_refresh_token": token.refresh_token is not None,
    }


# Steps of the login


@contextmanager
def _http_client(http: httpx.Client | None, timeout: float) -> Iterator[httpx.Client]:
    if http is not None:
        yield http
        return
    with httpx.Client(timeout=httpx.Timeout(timeout)) as client:
        yield client


def _redirect_uri(config: OAuthClientConfig, port: int) -> str:
    host = config.redirect_host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{config.redirect_path}"


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _paste_code(
    request: AuthorizationRequest,
    *,
    print_fn: Callable[[str], None],
    input_fn: Callable[[str], str],
) -> str:
    print_fn(
        "Open this URL on a device with a browser and approve the access:\n\n"
        f"    {request.url}\n\n"
        f"The browser then fails to load a page at {request.redirect_uri}. "
        "Copy that whole address from the address bar and paste it here."
    )
    try:
        pasted = input_fn("Redirect URL: ").strip()
    except EOFError:
        raise LoginError(
            "no redirect URL was read because standard input is closed; run "
            "`eyekiosk-sync auth login --no-browser` in a terminal (with sudo, keep -t or a tty)"
        ) from None
    if not pasted:
        raise LoginError("no redirect URL was pasted; run the login again")

    parts = urlsplit(pasted)
    expected = urlsplit(request.redirect_uri)
    if parts.path != expected.path or not parts.query:
        raise LoginError(
            f"the pasted text is not the redirect URL: expected an address starting with "
            f"http://{expected.hostname}:<port>{expected.path}?"
        )
    return parse_redirect(parts.query, expected_state=request.state)


def _open_in_browser(url: str, print_fn: Callable[[str], None]) -> None:
    try:
        webbrowser.get()
    except webbrowser.Error:
        print_fn(
            "No browser was found. Open the URL in a browser on this machine, or run the "
            "login again with --no-browser to approve on another device."
        )
        return
    if not webbrowser.open(url):
        print_fn("The browser could not be opened; open the URL yourself.")


def _follow_authorization(client: httpx.Client, request: AuthorizationRequest) -> None:
    """GET the authorization URL and follow redirects onto the listener."""
    try:
        response = client.get(request.url, follow_redirects=True)
    except httpx.HTTPError as error:
        raise LoginError(
            f"following the authorization URL failed: {type(error).__name__}"
        ) from error

    landed = urlsplit(str(response.url))
    expected = urlsplit(request.redirect_uri)
    if (landed.hostname, landed.port, landed.path) != (
        expected.hostname,
        expected.port,
        expected.path,
    ):
        raise LoginError(
            f"the authorization endpoint returned status {response.status_code} instead "
            "of a redirect back to this program. Automatic consent works only against a "
            "server that consents without a page, such as the sandbox demo mode"
        )


class _CallbackListener:
    """Loopback HTTP server that waits for one redirect to the redirect path."""

    def __init__(self, config: OAuthClientConfig) -> None:
        self._config = config
        self._results: queue.Queue[dict[str, list[str]]] = queue.Queue(maxsize=1)
        self._server = self._make_server()
        port = self._server.server_address[1]
        self.redirect_uri = _redirect_uri(config, port)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="eyekiosk-login-callback",
            daemon=True,
        )

    def __enter__(self) -> _CallbackListener:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def wait(self, timeout: float) -> dict[str, list[str]]:
        """Return the query of the first redirect, or raise LoginError after ``timeout`` seconds."""
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            raise LoginError(
                f"no redirect arrived at {self.redirect_uri} within {timeout:.0f} s; "
                "run the login again, or use --no-browser to paste the redirect URL"
            ) from None

    def _make_server(self) -> http.server.HTTPServer:
        results = self._results
        path = self._config.redirect_path

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # name fixed by BaseHTTPRequestHandler
                parts = urlsplit(self.path)
                if parts.path != path:
                    self.send_error(404)
                    return
                query = parse_qs(parts.query)
                ok = "code" in query and "error" not in query
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(SUCCESS_PAGE if ok else FAILURE_PAGE)
                # Only the first redirect counts; a reload of the page is ignored.
                try:
                    results.put_nowait(query)
                except queue.Full:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                # The query contains the authorization code, so request lines are not logged.
                logger.debug("login listener served a request", extra={"event": "login_callback"})

        server_class = _IPv6Server if ":" in self._config.redirect_host else http.server.HTTPServer
        try:
            return server_class((self._config.redirect_host, self._config.redirect_port), Handler)
        except OSError as error:
            raise LoginError(
                f"cannot listen on {self._config.redirect_host}:{self._config.redirect_port} "
                f"for the redirect: {error.strerror}; set another redirect port or use --no-browser"
            ) from error


class _IPv6Server(http.server.HTTPServer):
    address_family = socket.AF_INET6
