"""Admin and test endpoints under `/_sandbox/`. They need no token.

    GET    /_sandbox/requests            Partner API request counts, keyed by
                                         "METHOD /api/v1/partner/<route template>",
                                         plus token endpoint counts
    DELETE /_sandbox/requests            set every request count to zero
    POST   /_sandbox/reset               back to the seeded state; {"reseed": false}
                                         keeps the frames as they are
    GET    /_sandbox/faults              rules with requests left
    POST   /_sandbox/faults              {"kind": "rate_limit"|"server_error"|"latency",
                                         "count": 1, "status": 503, "retry_after": 1,
                                         "latency_ms": 0, "paths": ["/api/v1/partner"],
                                         "methods": ["GET"]}
    DELETE /_sandbox/faults              drop every rule
    POST   /_sandbox/tokens              {"scopes": [...], "ttl": 3600} -> {"access_token", ...}
    POST   /_sandbox/tokens/expire       {"token": "..."}: the access token is expired from now
    POST   /_sandbox/tokens/revoke       {"token": "..."}: access or refresh token
    POST   /_sandbox/oauth/auto-consent  {"enabled": true}
    GET    /_sandbox/frames?sku=...      one frame by SKU
    GET    /_sandbox/frames/{frameId}    one frame by id
    PATCH  /_sandbox/frames/{frameId}    {"quantity": 3, "price": "9.00", "updated_at": ...}
    POST   /_sandbox/frames/touch        {"frame_ids": [...], "updated_at": "..."|null}
    GET    /_sandbox/changed-frames      ids of the frames seeded unlike the CSV
    POST   /_sandbox/sales               {"count": 1, "frame_ids": null, "prescription": true}
    GET    /_sandbox/inventory-batches   inventory batches applied since the last reset
    GET    /_sandbox/webhook-deliveries  recent webhook delivery attempts
    POST   /_sandbox/webhook-deliveries/wait  {"timeout": 10}: wait for queued webhooks

Errors use the Partner API error body: 400 `invalid_request`, 404 `not_found`,
409 `out_of_stock` for a sale of an unknown or out-of-stock frame.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.sandbox.responses import ApiError, json_body
from sync.sandbox.store import SandboxStore

ADMIN_PREFIX = "/_sandbox"


async def _object_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    payload = await json_body(request)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    return payload


class AdminApi:
    """Handlers of the `/_sandbox/` endpoints over one store.

    Args:
        store: the sandbox state.
    """

    def __init__(self, store: SandboxStore) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        """Return the Starlette routes of the admin endpoints."""
        p = ADMIN_PREFIX
        return [
            Route(f"{p}/requests", self.get_counts, methods=["GET"]),
            Route(f"{p}/requests", self.reset_counts, methods=["DELETE"]),
            Route(f"{p}/reset", self.reset, methods=["POST"]),
            Route(f"{p}/faults", self.get_faults, methods=["GET"]),
            Route(f"{p}/faults", self.add_fault, methods=["POST"]),
            Route(f"{p}/faults", self.clear_faults, methods=["DELETE"]),
            Route(f"{p}/tokens", self.mint_token, methods=["POST"]),
            Route(f"{p}/tokens/expire", self.expire_token, methods=["POST"]),
            Route(f"{p}/tokens/revoke", self.revoke_token, methods=["POST"]),
            Route(f"{p}/oauth/auto-consent", self.auto_consent, methods=["POST"]),
            Route(f"{p}/frames", self.find_frame, methods=["GET"]),
            Route(f"{p}/frames/touch", self.touch_frames, methods=["POST"]),
            Route(f"{p}/frames/{{frameId}}", self.get_frame, methods=["GET"]),
            Route(f"{p}/frames/{{frameId}}", self.set_frame, methods=["PATCH"]),
            Route(f"{p}/changed-frames", self.changed_frames, methods=["GET"]),
            Route(f"{p}/sales", self.create_sales, methods=["POST"]),
            Route(f"{p}/inventory-batches", self.inventory_batches, methods=["GET"]),
            Route(f"{p}/webhook-deliveries", self.deliveries, methods=["GET"]),
            Route(f"{p}/webhook-deliveries/wait", self.wait_deliveries, methods=["POST"]),
        ]

    # Counts, reset, faults

    async def get_counts(self, request: Request) -> Response:
        """Return request counts."""
        return JSONResponse(
            {
                "requests": self.store.request_counts(),
                "token_requests": self.store.token_request_count(),
                "token_requests_by_grant": dict(self.store.oauth.token_requests),
            }
        )

    async def reset_counts(self, request: Request) -> Response:
        """Set every request count to zero."""
        self.store.reset_counts()
        return Response(status_code=204)

    async def reset(self, request: Request) -> Response:
        """Return the store to its seeded state."""
        body = await _object_body(request)
        await asyncio.to_thread(self.store.reset, reseed=bool(body.get("reseed", True)))
        return Response(status_code=204)

    async def get_faults(self, request: Request) -> Response:
        """List fault rules with requests left."""
        return JSONResponse({"faults": self.store.faults.rules()})

    async def add_fault(self, request: Request) -> Response:
        """Add a fault rule."""
        body = await _object_body(request)
        kind = body.pop("kind", None)
        count = body.pop("count", 1)
        allowed = {"status", "retry_after", "latency_ms", "paths", "methods"}
        if not isinstance(kind, str) or not isinstance(count, int) or set(body) - allowed:
            raise ApiError(
                400,
                "invalid_request",
                f"body needs kind and count and may set only {sorted(allowed)}",
            )
        try:
            self.store.inject_fault(kind, count, **body)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return JSONResponse({"faults": self.store.faults.rules()}, status_code=201)

    async def clear_faults(self, request: Request) -> Response:
        """Drop every fault rule."""
        self.store.clear_faults()
        return Response(status_code=204)

    # Tokens

    async def mint_token(self, request: Request) -> Response:
        """Mint an access token with the given scopes and ttl in seconds."""
        body = await _object_body(request)
        scopes = body.get("scopes", [])
        ttl = body.get("ttl")
        if not isinstance(scopes, list) or not all(isinstance(item, str) for item in scopes):
            raise ApiError(400, "invalid_request", "scopes must be a list of strings")
        if ttl is not None and not isinstance(ttl, int | float):
            raise ApiError(400, "invalid_request", "ttl must be a number of seconds")
        token = self.store.mint_token(scopes, ttl)
        expires_in = self.store.tokens.access_token_ttl if ttl is None else ttl
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": " ".join(scopes),
            },
            status_code=201,
        )

    async def expire_token(self, request: Request) -> Response:
        """Expire an access token now."""
        if not self.store.expire_token(await self._token(request)):
            raise ApiError(404, "not_found", "the token is unknown")
        return Response(status_code=204)

    async def revoke_token(self, request: Request) -> Response:
        """Revoke an access or refresh token."""
        if not self.store.revoke_token(await self._token(request)):
            raise ApiError(404, "not_found", "the token is unknown")
        return Response(status_code=204)

    async def _token(self, request: Request) -> str:
        token = (await _object_body(request)).get("token")
        if not isinstance(token, str) or not token:
            raise ApiError(400, "invalid_request", "body must carry the token as a string")
        return token

    async def auto_consent(self, request: Request) -> Response:
        """Switch auto-consent on or off."""
        enabled = (await _object_body(request)).get("enabled")
        if not isinstance(enabled, bool):
            raise ApiError(400, "invalid_request", "enabled must be true or false")
        self.store.set_auto_consent(enabled)
        return JSONResponse({"enabled": enabled})

    # Frames

    async def find_frame(self, request: Request) -> Response:
        """Return one frame by its SKU."""
        sku = request.query_params.get("sku")
        if not sku:
            raise ApiError(400, "invalid_request", "sku is required")
        frame = self.store.find_frame(sku)
        if frame is None:
            raise ApiError(404, "not_found", f"no frame has SKU {sku}")
        return JSONResponse(frame)

    async def get_frame(self, request: Request) -> Response:
        """Return one frame by id."""
        frame_id = request.path_params["frameId"]
        frame = self.store.get_frame(frame_id)
        if frame is None:
            raise ApiError(404, "not_found", f"frame {frame_id} does not exist")
        return JSONResponse(frame)

    async def set_frame(self, request: Request) -> Response:
        """Set frame fields as if changed on Eyekiosk's side."""
        frame_id = request.path_params["frameId"]
        body = await _object_body(request)
        if self.store.get_frame(frame_id) is None:
            raise ApiError(404, "not_found", f"frame {frame_id} does not exist")
        try:
            return JSONResponse(self.store.set_frame(frame_id, **body))
        except (KeyError, ValueError) as exc:
            raise ApiError(400, "invalid_request", str(exc).strip("'\"")) from None

    async def touch_frames(self, request: Request) -> Response:
        """Stamp frames with a given or fresh updated_at."""
        body = await _object_body(request)
        frame_ids = body.get("frame_ids")
        if not isinstance(frame_ids, list) or not all(isinstance(item, str) for item in frame_ids):
            raise ApiError(400, "invalid_request", "frame_ids must be a list of frame ids")
        try:
            stamps = self.store.touch_frames(frame_ids, body.get("updated_at"))
        except KeyError as exc:
            raise ApiError(404, "not_found", str(exc).strip("'\"")) from None
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None
        return JSONResponse({"updated_at": dict(zip(frame_ids, stamps, strict=True))})

    async def changed_frames(self, request: Request) -> Response:
        """Return the ids of the frames that were seeded unlike the CSV."""
        ids = self.store.frame_ids_by_position(self.store.changed_positions)
        return JSONResponse({"frame_ids": ids})

    # Sales, batches, deliveries

    async def create_sales(self, request: Request) -> Response:
        """Create simulated kiosk sales."""
        body = await _object_body(request)
        count = body.get("count", 1)
        frame_ids = body.get("frame_ids")
        if not isinstance(count, int) or count < 1:
            raise ApiError(400, "invalid_request", "count must be an integer of 1 or more")
        try:
            orders = self.store.create_sales(
                count, frame_ids=frame_ids, prescription=bool(body.get("prescription", True))
            )
        except LookupError as exc:
            raise ApiError(409, "out_of_stock", str(exc)) from None
        return JSONResponse({"order_ids": orders}, status_code=201)

    async def inventory_batches(self, request: Request) -> Response:
        """List the inventory batches applied since the last reset."""
        return JSONResponse({"batches": self.store.inventory_batches()})

    async def deliveries(self, request: Request) -> Response:
        """List recent webhook delivery attempts."""
        items = [dataclasses.asdict(item) for item in self.store.webhook_deliveries()]
        return JSONResponse({"deliveries": items})

    async def wait_deliveries(self, request: Request) -> Response:
        """Wait until queued webhooks have been attempted."""
        timeout = (await _object_body(request)).get("timeout", 10)
        if not isinstance(timeout, int | float) or timeout < 0:
            raise ApiError(400, "invalid_request", "timeout must be a non-negative number")
        idle = await asyncio.to_thread(self.store.wait_for_webhooks, float(timeout))
        return JSONResponse({"idle": idle})
