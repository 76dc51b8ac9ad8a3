"""The sandbox's Starlette application: routes, request counting, fault injection, error bodies."""

from __future__ import annotations

import asyncio
import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from sync.models import API_PREFIX
from sync.sandbox.admin import AdminApi
from sync.sandbox.api import PartnerApi
from sync.sandbox.faults import FaultRule
from sync.sandbox.oauth import TOKEN_PATH
from sync.sandbox.responses import ApiError, error_response
from sync.sandbox.store import SandboxStore

logger = logging.getLogger("sync.sandbox.app")

HTTP_REASONS = {404: "not_found", 405: "method_not_allowed"}


def route_template(routes: list[BaseRoute], scope: Scope) -> str:
    """Return the path template of the route that matches scope, or the raw path."""
    for route in routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            return str(getattr(route, "path", scope["path"]))
    return str(scope["path"])


def fault_response(rule: FaultRule, path: str) -> Response:
    """Build the response of a rate_limit or server_error fault."""
    if rule.kind == "rate_limit":
        status, code, message = 429, "rate_limited", "too many requests; retry after the wait"
        headers = {"Retry-After": str(rule.retry_after)}
    else:
        status, code, message = rule.status, "server_error", "injected server error; retry later"
        headers = {}
    if path == TOKEN_PATH:
        # The token endpoint uses RFC 6749 error bodies, not the API's.
        body = {"error": "temporarily_unavailable", "error_description": message}
        return JSONResponse(body, status_code=status, headers=headers)
    return error_response(status, code, message, headers=headers)


class CountAndFaultMiddleware:
    """Count Partner API and token requests, then apply any injected fault.

    Args:
        app: the wrapped ASGI app.
        store: where counts and fault rules live.
        routes: routes used to find the template of a request path.
    """

    def __init__(self, app: ASGIApp, store: SandboxStore, routes: list[BaseRoute]) -> None:
        self.app = app
        self.store = store
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]

        if path.startswith(API_PREFIX):
            self.store.count_request(f"{method} {route_template(self.routes, scope)}")
        elif path == TOKEN_PATH:
            self.store.count_token_request()

        rule = self.store.faults.take(method, path)
        if rule is not None and rule.kind == "latency":
            await asyncio.sleep(rule.latency_ms / 1000)
        elif rule is not None:
            logger.info("sandbox.fault.applied kind=%s method=%s path=%s", rule.kind, method, path)
            await fault_response(rule, path)(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    logger.info(
        "sandbox.request.rejected method=%s path=%s status=%d code=%s",
        request.method,
        request.url.path,
        exc.status,
        exc.code,
    )
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_REASONS.get(exc.status_code, "invalid_request")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.error(
        "sandbox.request.failed method=%s path=%s",
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return error_response(500, "server_error", "the sandbox failed; see its log")


def build_app(store: SandboxStore) -> Starlette:
    """Build the Starlette app that serves the Partner API, OAuth and admin routes over store."""
    routes: list[BaseRoute] = [
        *PartnerApi(store).routes(),
        *store.oauth.routes(),
        *AdminApi(store).routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.add_middleware(CountAndFaultMiddleware, store=store, routes=routes)
    return app
