"""Error bodies and query-parameter parsing shared by the sandbox's API routes."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse

from sync.models import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from sync.sandbox.clock import parse_timestamp


class ApiError(Exception):
    """An API failure that becomes the contract's error body.

    Args:
        status: HTTP status.
        code: the body's `error.code`.
        message: the body's `error.message`.
        required_scope: set for 403 `insufficient_scope`.
        headers: extra response headers.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        required_scope: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.required_scope = required_scope
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """Build the JSON response with the contract's error body."""
        return error_response(
            self.status,
            self.code,
            self.message,
            required_scope=self.required_scope,
            headers=self.headers,
        )


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    required_scope: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build `{"error": {"code", "message", "required_scope"?}}` with status."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if required_scope is not None:
        detail["required_scope"] = required_scope
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def page_response(data: list[dict[str, Any]], limit: int, offset: int, total: int) -> JSONResponse:
    """Build the list envelope."""
    return JSONResponse(
        {"data": data, "pagination": {"limit": limit, "offset": offset, "total": total}}
    )


def _integer(query: QueryParams, name: str, default: int, low: int, high: int | None) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        upper = f" to {high}" if high is not None else " or more"
        raise ApiError(400, "invalid_request", f"{name} must be an integer {low}{upper}")
    return value


def paging(query: QueryParams) -> tuple[int, int]:
    """Parse `limit` (1 to 500, default 50) and `offset` (0 or more, default 0).

    Raises:
        ApiError: 400 `invalid_request` naming the parameter.
    """
    limit = _integer(query, "limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
    offset = _integer(query, "offset", 0, 0, None)
    return limit, offset


def timestamp_param(query: QueryParams, name: str) -> int | None:
    """Parse an ISO 8601 timestamp parameter into epoch microseconds, or None when absent.

    Raises:
        ApiError: 400 `invalid_request` when it is not ISO 8601 with an offset.
    """
    text = query.get(name)
    if text is None:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        raise ApiError(
            400, "invalid_request", f"{name} must be an ISO 8601 timestamp with an offset"
        ) from None


def boolean_param(query: QueryParams, name: str) -> bool | None:
    """Parse a `true`/`false` parameter, or None when absent.

    Raises:
        ApiError: 400 `invalid_request` for any other value.
    """
    text = query.get(name)
    if text is None:
        return None
    if text.lower() not in ("true", "false"):
        raise ApiError(400, "invalid_request", f"{name} must be true or false")
    return text.lower() == "true"


async def json_body(request: Request) -> Any:
    """Return the parsed JSON body.

    Raises:
        ApiError: 400 `invalid_request` when the body is not JSON.
    """
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "invalid_request", "body must be valid UTF-8 JSON") from None
