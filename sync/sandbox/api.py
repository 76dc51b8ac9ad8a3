"""Routes of the Partner API under `/api/v1/partner`, as docs/partner-api.md describes them."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sync.models import API_PREFIX, WebhookCreate, WebhookPatch
from sync.sandbox.catalogue import FrameFilter
from sync.sandbox.inventory import BatchError
from sync.sandbox.orders import InvalidTransition, UnknownStatus
from sync.sandbox.responses import (
    ApiError,
    boolean_param,
    json_body,
    page_response,
    paging,
    timestamp_param,
)
from sync.sandbox.store import SandboxStore
from sync.sandbox.webhooks import WebhookRejected

logger = logging.getLogger("sync.sandbox.api")

INVALID_TOKEN_HEADER = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def _validation_message(error: ValidationError) -> str:
    """Summarise pydantic errors by field location and reason, without input values."""
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


class PartnerApi:
    """Handlers of the ten Partner API endpoints over one store.

    Args:
        store: the sandbox state.
    """

    def __init__(self, store: SandboxStore) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        """Return the Starlette routes, templated as in the contract."""
        prefix = API_PREFIX
        return [
            Route(f"{prefix}/frames", self.list_frames, methods=["GET"]),
            Route(f"{prefix}/inventory", self.post_inventory, methods=["POST"]),
            Route(f"{prefix}/orders", self.list_orders, methods=["GET"]),
            Route(f"{prefix}/orders/{{orderId}}", self.get_order, methods=["GET"]),
            Route(f"{prefix}/orders/{{orderId}}", self.patch_order, methods=["PATCH"]),
            Route(f"{prefix}/prescriptions", self.list_prescriptions, methods=["GET"]),
            Route(f"{prefix}/webhooks", self.list_webhooks, methods=["GET"]),
            Route(f"{prefix}/webhooks", self.create_webhook, methods=["POST"]),
            Route(f"{prefix}/webhooks/{{webhookId}}", self.patch_webhook, methods=["PATCH"]),
            Route(f"{prefix}/webhooks/{{webhookId}}", self.delete_webhook, methods=["DELETE"]),
        ]

    def require(self, request: Request, scope: str) -> None:
        """Check the bearer token and its scope.

        Raises:
            ApiError: 401 `invalid_token` for a missing, unknown, expired or revoked
                token; 403 `insufficient_scope` naming scope when the token lacks it.
        """
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "invalid_token",
                "a bearer access token is required",
                headers=INVALID_TOKEN_HEADER,
            )
        stored = self.store.tokens.lookup(token.strip())
        if stored is None:
            raise ApiError(
                401,
                "invalid_token",
                "the access token is unknown, expired or revoked",
                headers=INVALID_TOKEN_HEADER,
            )
        if not stored.allows(scope):
            raise ApiError(
                403,
                "insufficient_scope",
                f"{scope} is required",
                required_scope=scope,
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )

    # Frames and inventory

    async def list_frames(self, request: Request) -> Response:
        """GET /frames: frames in (updated_at, id) order, filtered and paged."""
        self.require(request, "frames:read")
        query = request.query_params
        limit, offset = paging(query)
        frame_filter = FrameFilter(
            brand=query.get("brand"),
            in_stock=boolean_param(query, "in_stock"),
            updated_since_us=timestamp_param(query, "updated_since"),
        )
        data, total = self.store.catalogue.page(frame_filter, limit, offset)
        return page_response(data, limit, offset, total)

    async def post_inventory(self, request: Request) -> Response:
        """POST /inventory: apply or replay a batch of quantity and price updates."""
        self.require(request, "inventory:write")
        payload = await json_body(request)
        try:
            result = self.store.inventory.submit(payload, request.headers.get("idempotency-key"))
        except BatchError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        return JSONResponse(result)

    # Orders and prescriptions

    async def list_orders(self, request: Request) -> Response:
        """GET /orders: orders without payment, filtered by status and since."""
        self.require(request, "orders:read")
        query = request.query_params
        limit, offset = paging(query)
        data, total = self.store.orders.page(
            status=query.get("status"),
            since_us=timestamp_param(query, "since"),
            limit=limit,
            offset=offset,
        )
        return page_response(data, limit, offset, total)

    async def get_order(self, request: Request) -> Response:
        """GET /orders/{orderId}: one order with payment."""
        self.require(request, "orders:read")
        order_id = request.path_params["orderId"]
        order = self.store.orders.get(order_id)
        if order is None:
            raise ApiError(404, "not_found", f"order {order_id} does not exist")
        return JSONResponse(order.to_wire(with_payment=True))

    async def patch_order(self, request: Request) -> Response:
        """PATCH /orders/{orderId}: change the status along the transition table."""
        self.require(request, "orders:full")
        order_id = request.path_params["orderId"]
        payload = await json_body(request)
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            raise ApiError(422, "validation_failed", "body must be an object with a status string")
        try:
            changed = self.store.orders.change_status(order_id, payload["status"])
        except UnknownStatus as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        except InvalidTransition as exc:
            raise ApiError(409, "invalid_transition", str(exc)) from None
        if changed is None:
            raise ApiError(404, "not_found", f"order {order_id} does not exist")
        order, previous = changed
        if order.status != previous:
            self._emit_status_events(order.id, previous, order.status)
        return JSONResponse(order.to_wire(with_payment=True))

    def _emit_status_events(self, order_id: str, previous: str, status: str) -> None:
        # The contract puts ids only in event data; receivers fetch the order for its status.
        self.store.webhooks.emit("order.status_changed", {"order_id": order_id})
        if status == "completed":
            self.store.webhooks.emit("order.completed", {"order_id": order_id})

    async def list_prescriptions(self, request: Request) -> Response:
        """GET /prescriptions: prescriptions filtered by order_id and since (created_at)."""
        self.require(request, "prescriptions:read")
        query = request.query_params
        limit, offset = paging(query)
        data, total = self.store.orders.prescriptions_page(
            order_id=query.get("order_id"),
            since_us=timestamp_param(query, "since"),
            limit=limit,
            offset=offset,
        )
        return page_response(data, limit, offset, total)

    # Webhooks

    async def list_webhooks(self, request: Request) -> Response:
        """GET /webhooks: subscriptions, oldest first, without secrets."""
        self.require(request, "webhooks:read")
        limit, offset = paging(request.query_params)
        items = self.store.webhooks.list_subscriptions()
        return page_response(items[offset : offset + limit], limit, offset, len(items))

    async def create_webhook(self, request: Request) -> Response:
        """POST /webhooks: create a subscription; the only response with its secret."""
        self.require(request, "webhooks:write")
        body = self._parse(WebhookCreate, await json_body(request))
        try:
            created = self.store.webhooks.create(body.url, list(body.events), body.enabled)
        except WebhookRejected as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        return JSONResponse(created, status_code=201)

    async def patch_webhook(self, request: Request) -> Response:
        """PATCH /webhooks/{webhookId}: change url, events or enabled."""
        self.require(request, "webhooks:write")
        webhook_id = request.path_params["webhookId"]
        body = self._parse(WebhookPatch, await json_body(request))
        try:
            updated = self.store.webhooks.update(
                webhook_id,
                url=body.url,
                events=list(body.events) if body.events is not None else None,
                enabled=body.enabled,
            )
        except WebhookRejected as exc:
            raise ApiError(422, "validation_failed", str(exc)) from None
        if updated is None:
            raise ApiError(404, "not_found", f"webhook {webhook_id} does not exist")
        return JSONResponse(updated)

    async def delete_webhook(self, request: Request) -> Response:
        """DELETE /webhooks/{webhookId}: remove a subscription."""
        self.require(request, "webhooks:write")
        webhook_id = request.path_params["webhookId"]
        if not self.store.webhooks.delete(webhook_id):
            raise ApiError(404, "not_found", f"webhook {webhook_id} does not exist")
        return Response(status_code=204)

    @staticmethod
    def _parse(model: Any, payload: Any) -> Any:
        if not isinstance(payload, dict):
            raise ApiError(422, "validation_failed", "body must be a JSON object")
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise ApiError(422, "validation_failed", _validation_message(exc)) from None
