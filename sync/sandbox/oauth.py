"""OAuth 2.1 authorization server of the sandbox: discovery, consent page and token endpoint.

One client is registered. Its redirect URIs are loopback URIs on any port (RFC 8252
section 7.3): `http://127.0.0.1:{port}/...`, `http://[::1]:{port}/...` or
`http://localhost:{port}/...`. Authorization requests must use PKCE with S256 and
carry a state. With auto-consent on, `/oauth/authorize` approves at once and
redirects without showing the page.
"""

from __future__ import annotations

import base64
import binascii
import html
import logging
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sync.sandbox.tokens import (
    SUPPORTED_SCOPES,
    GrantError,
    IssuedTokens,
    TokenStore,
    granted_scopes,
)
from sync.sandbox.webhooks import is_loopback_host

logger = logging.getLogger("sync.sandbox.oauth")

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - documented default of a local test server
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
MAX_PENDING_CONSENTS = 1_000


@dataclass(frozen=True)
class ConsentRequest:
    """A validated authorization request waiting for the user's decision."""

    redirect_uri: str
    state: str
    code_challenge: str
    scopes: tuple[str, ...]


def is_loopback_redirect(uri: str) -> bool:
    """Tell whether uri is an http URI to a loopback host, any port, without a fragment."""
    parts = urlsplit(uri)
    return (
        parts.scheme == "http"
        and bool(parts.hostname)
        and not parts.fragment
        and (is_loopback_host(parts.hostname or ""))
    )


def token_error(error: str, description: str, status: int = 400, **headers: str) -> JSONResponse:
    """Build an RFC 6749 section 5.2 error response."""
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **headers})


def redirect_with(uri: str, params: dict[str, str]) -> RedirectResponse:
    """Redirect to uri with params added to its query string."""
    separator = "&" if urlsplit(uri).query else "?"
    return RedirectResponse(f"{uri}{separator}{urlencode(params)}", status_code=302)


class OAuthServer:
    """The authorization and token endpoints for one registered client.

    Args:
        tokens: where codes and tokens are kept.
        client_id: id of the registered client.
        client_secret: secret of the registered client.
        auto_consent: approve authorization requests without showing the consent page.
    """

    def __init__(
        self,
        tokens: TokenStore,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        auto_consent: bool = False,
    ) -> None:
        self.tokens = tokens
        self.client_id = client_id
        self._client_secret = client_secret
        self.auto_consent = auto_consent
        self._lock = threading.Lock()
        self._pending: dict[str, ConsentRequest] = {}
        self.token_requests: Counter[str] = Counter()

    def routes(self) -> list[Route]:
        """Return the Starlette routes of discovery, authorization and token endpoints."""
        return [
            Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
            Route(AUTHORIZE_PATH, self.authorize, methods=["GET"]),
            Route(AUTHORIZE_PATH, self.decide, methods=["POST"]),
            Route(TOKEN_PATH, self.token, methods=["POST"]),
        ]

    def reset(self) -> None:
        """Forget pending consents and token request counts."""
        with self._lock:
            self._pending.clear()
            self.token_requests.clear()

    # Discovery

    async def discovery(self, request: Request) -> Response:
        """Serve the OpenID discovery document with this server's own base URL."""
        issuer = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + AUTHORIZE_PATH,
                "token_endpoint": issuer + TOKEN_PATH,
                "scopes_supported": list(SUPPORTED_SCOPES),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
            }
        )

    # Authorization endpoint

    async def authorize(self, request: Request) -> Response:
        """Validate an authorization request, then show the consent page or redirect.

        Errors in client_id or redirect_uri show an error page, because redirecting
        to an unverified URI would be an open redirect (RFC 6749 section 4.1.2.1).
        Other errors redirect with `error=`.
        """
        query = request.query_params
        if query.get("client_id") != self.client_id:
            return self._error_page("client_id is missing or unknown")
        redirect_uri = query.get("redirect_uri", "")
        if not is_loopback_redirect(redirect_uri):
            return self._error_page("redirect_uri must be an http loopback URI, any port")

        state = query.get("state", "")
        problem = self._request_problem(query)
        if problem is not None:
            error, description = problem
            params = {"error": error, "error_description": description}
            return redirect_with(redirect_uri, {**params, "state": state} if state else params)

        consent = ConsentRequest(
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=query["code_challenge"],
            scopes=tuple(granted_scopes(query.get("scope", ""))),
        )
        if self.auto_consent:
            return self._approve(consent)
        return self._consent_page(consent)

    def _request_problem(self, query: Any) -> tuple[str, str] | None:
        if query.get("response_type") != "code":
            return "unsupported_response_type", "response_type must be code"
        if not query.get("state"):
            return "invalid_request", "state is required"
        if query.get("code_challenge_method") != "S256":
            return "invalid_request", "code_challenge_method must be S256"
        if not 43 <= len(query.get("code_challenge", "")) <= 128:
            return "invalid_request", "code_challenge must be 43 to 128 characters"
        if not granted_scopes(query.get("scope", "")):
            return "invalid_scope", f"scope must name at least one of {' '.join(SUPPORTED_SCOPES)}"
        return None

    def _consent_page(self, consent: ConsentRequest) -> HTMLResponse:
        consent_id = secrets.token_urlsafe(16)
        with self._lock:
            self._pending[consent_id] = consent
            while len(self._pending) > MAX_PENDING_CONSENTS:
                del self._pending[next(iter(self._pending))]
        scopes = "".join(f"<li><code>{html.escape(item)}</code></li>" for item in consent.scopes)
        page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Eyekiosk sandbox: authorize</title></head>
<body>
<h1>Authorize {html.escape(self.client_id)}</h1>
<p>The application asks for these scopes:</p>
<ul>{scopes}</ul>
<form method="post" action="{AUTHORIZE_PATH}">
<input type="hidden" name="consent_id" value="{consent_id}">
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
</body></html>"""
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def decide(self, request: Request) -> Response:
        """Handle the consent form: approve redirects with a code, deny with access_denied."""
        form = await request.form()
        consent_id = str(form.get("consent_id", ""))
        with self._lock:
            consent = self._pending.pop(consent_id, None)
        if consent is None:
            return self._error_page("the consent request is unknown or was already answered")
        if form.get("decision") != "approve":
            logger.info("sandbox.oauth.denied")
            return redirect_with(
                consent.redirect_uri, {"error": "access_denied", "state": consent.state}
            )
        return self._approve(consent)

    def _approve(self, consent: ConsentRequest) -> RedirectResponse:
        code = self.tokens.create_code(
            self.client_id, consent.redirect_uri, consent.code_challenge, consent.scopes
        )
        logger.info("sandbox.oauth.approved scopes=%s", " ".join(consent.scopes))
        return redirect_with(consent.redirect_uri, {"code": code, "state": consent.state})

    def _error_page(self, message: str) -> HTMLResponse:
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>Eyekiosk sandbox: authorization error</title></head>"
            f"<body><h1>Authorization error</h1><p>{html.escape(message)}</p></body></html>"
        )
        return HTMLResponse(page, status_code=400)

    # Token endpoint

    async def token(self, request: Request) -> Response:
        """Exchange an authorization code or a refresh token for tokens."""
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return token_error("invalid_request", "body must be application/x-www-form-urlencoded")
        form = {key: str(value) for key, value in (await request.form()).items()}
        grant_type = form.get("grant_type", "")
        with self._lock:
            self.token_requests[grant_type or "(none)"] += 1

        failure = self._authenticate_client(request, form)
        if failure is not None:
            return failure
        if grant_type == "authorization_code":
            missing = [
                name for name in ("code", "redirect_uri", "code_verifier") if not form.get(name)
            ]
            if missing:
                return token_error("invalid_request", f"missing parameters: {', '.join(missing)}")
            outcome = self.tokens.redeem_code(
                form["code"], self.client_id, form["redirect_uri"], form["code_verifier"]
            )
        elif grant_type == "refresh_token":
            if not form.get("refresh_token"):
                return token_error("invalid_request", "missing parameter: refresh_token")
            outcome = self.tokens.refresh(form["refresh_token"], self.client_id, form.get("scope"))
        else:
            return token_error(
                "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
            )
        return self._token_response(grant_type, outcome)

    def _token_response(self, grant_type: str, outcome: IssuedTokens | GrantError) -> Response:
        if isinstance(outcome, GrantError):
            logger.warning(
                "sandbox.oauth.grant_rejected grant_type=%s error=%s reason=%s",
                grant_type,
                outcome.error,
                outcome.description,
            )
            return token_error(outcome.error, outcome.description)
        logger.info("sandbox.oauth.token_issued grant_type=%s", grant_type)
        body = {
            "access_token": outcome.access_token,
            "token_type": "Bearer",
            "expires_in": outcome.expires_in,
            "refresh_token": outcome.refresh_token,
            "scope": " ".join(outcome.scopes),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _authenticate_client(self, request: Request, form: dict[str, str]) -> Response | None:
        """Check client_secret_basic or client_secret_post; return an error response on failure."""
        header = request.headers.get("authorization", "")
        basic = header[6:].strip() if header[:6].lower() == "basic " else None
        if basic is not None and "client_secret" in form:
            return token_error("invalid_request", "use one client authentication method, not two")

        if basic is not None:
            try:
                decoded = base64.b64decode(basic, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            raw_id, _, raw_secret = decoded.partition(":")
            # RFC 6749 section 2.3.1: both parts are form-urlencoded before encoding.
            client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")

        id_ok = secrets.compare_digest(client_id.encode(), self.client_id.encode())
        secret_ok = secrets.compare_digest(secret.encode(), self._client_secret.encode())
        if id_ok and secret_ok and form.get("client_id", client_id) == client_id:
            return None
        logger.warning("sandbox.oauth.client_rejected method=%s", "basic" if basic else "post")
        return token_error(
            "invalid_client",
            "client authentication failed",
            status=401,
            **{"WWW-Authenticate": 'Basic realm="eyekiosk-sandbox"'},
        )
