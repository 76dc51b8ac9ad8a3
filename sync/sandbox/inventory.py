"""Inventory batches: per-item validation, application, idempotent replay and a log of batches."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sync.models import MAX_INVENTORY_BATCH, MAX_QUANTITY
from sync.sandbox.catalogue import FrameCatalogue, frame_number
from sync.sandbox.clock import MonotonicClock, format_us
from sync.sandbox.webhooks import WebhookHub

logger = logging.getLogger("sync.sandbox.inventory")

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_IDEMPOTENCY_KEY_LENGTH = 255
PRICE_PATTERN = re.compile(r"^\d+(\.\d{1,2})?$")


class BatchError(Exception):
    """The batch as a whole is rejected; carries the HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StoredResponse:
    """The response to a keyed batch, kept for replay."""

    body_hash: str
    response: dict[str, Any]
    stored_at: float


def _rejection(frame_id_text: str, code: str, message: str) -> dict[str, Any]:
    return {
        "frame_id": frame_id_text,
        "status": "rejected",
        "error": {"code": code, "message": message},
    }


def parse_quantity(value: Any) -> int | None:
    """Return value as a quantity, or None when it is not an integer in 0..MAX_QUANTITY."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_QUANTITY else None


def parse_price_cents(value: Any) -> int | None:
    """Return a non-negative decimal string with at most two places as cents, else None."""
    if not isinstance(value, str) or not PRICE_PATTERN.match(value):
        return None
    return int(Decimal(value) * 100)


def check_batch_shape(payload: Any) -> list[dict[str, Any]]:
    """Return the updates of a batch body after checking its shape.

    Raises:
        BatchError: 422 when the body or an update is not an object with the required
            fields, 413 when there are more than `MAX_INVENTORY_BATCH` updates.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("updates"), list):
        raise BatchError(422, "validation_failed", "body must be an object with an updates list")
    updates: list[dict[str, Any]] = payload["updates"]
    if len(updates) > MAX_INVENTORY_BATCH:
        raise BatchError(
            413,
            "batch_too_large",
            f"{len(updates)} updates exceed the maximum of {MAX_INVENTORY_BATCH} per batch",
        )
    if not updates:
        raise BatchError(422, "validation_failed", "updates must contain at least one update")
    for position, update in enumerate(updates):
        if not isinstance(update, dict) or not isinstance(update.get("frame_id"), str):
            raise BatchError(
                422, "validation_failed", f"updates[{position}] must be an object with a frame_id"
            )
        if "quantity" not in update and "price" not in update:
            raise BatchError(
                422, "validation_failed", f"updates[{position}] must carry quantity, price or both"
            )
    return updates


class InventoryDesk:
    """Applies inventory batches to the catalogue.

    Args:
        catalogue: frames to update.
        hub: receives one `inventory.updated` event per batch that changed frames.
        clock: source of the received-at time in the batch log.
    """

    def __init__(self, catalogue: FrameCatalogue, hub: WebhookHub, clock: MonotonicClock) -> None:
        self._catalogue = catalogue
        self._hub = hub
        self._clock = clock
        self._lock = threading.Lock()
        self._stored: dict[str, StoredResponse] = {}
        self._batches: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Forget stored responses and the batch log."""
        with self._lock:
            self._stored.clear()
            self._batches.clear()

    def batches(self) -> list[dict[str, Any]]:
        """Return every applied batch, oldest first.

        Each entry has received_at, idempotency_key, updates and results.
        """
        with self._lock:
            return list(self._batches)

    def submit(self, payload: Any, idempotency_key: str | None) -> dict[str, Any]:
        """Apply a batch, or replay the stored response to an earlier batch with the same key.

        Raises:
            BatchError: the key is too long or reused with another body, or the batch
                shape is invalid (see `check_batch_shape`).
        """
        if (
            idempotency_key is not None
            and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        ):
            raise BatchError(
                400,
                "invalid_request",
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            )
        updates = check_batch_shape(payload)
        body_hash = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

        # One lock across lookup and apply, so two requests with one key apply once.
        with self._lock:
            if idempotency_key is not None:
                replay = self._replay(idempotency_key, body_hash)
                if replay is not None:
                    return replay
            response = self._apply(updates)
            if idempotency_key is not None:
                self._stored[idempotency_key] = StoredResponse(body_hash, response, time.time())
            self._batches.append(
                {
                    "received_at": format_us(self._clock.now_us()),
                    "idempotency_key": idempotency_key,
                    "updates": updates,
                    "results": response["results"],
                }
            )
        return response

    def _replay(self, key: str, body_hash: str) -> dict[str, Any] | None:
        stored = self._stored.get(key)
        if stored is None or time.time() - stored.stored_at > IDEMPOTENCY_TTL_SECONDS:
            return None
        if stored.body_hash != body_hash:
            raise BatchError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another body; use a new key for a new batch",
            )
        logger.info("sandbox.inventory.replayed updates=%d", len(stored.response["results"]))
        return stored.response

    def _apply(self, updates: list[dict[str, Any]]) -> dict[str, Any]:
        results = [self._apply_one(update) for update in updates]
        changed = [item["frame_id"] for item in results if item["status"] == "updated"]
        rejected = sum(1 for item in results if item["status"] == "rejected")
        if changed:
            self._hub.emit("inventory.updated", {"frame_ids": changed})
        logger.info(
            "sandbox.inventory.applied updates=%d updated=%d rejected=%d",
            len(updates),
            len(changed),
            rejected,
        )
        return {"results": results, "updated": len(changed), "rejected": rejected}

    def _apply_one(self, update: dict[str, Any]) -> dict[str, Any]:
        frame_id_text = update["frame_id"]
        number = frame_number(frame_id_text)
        current = self._catalogue.current_values(number) if number is not None else None
        if number is None or current is None:
            return _rejection(
                frame_id_text, "unknown_frame", f"frame {frame_id_text} does not exist"
            )

        # Validate every field before changing any of them.
        values: dict[str, Any] = {}
        if "quantity" in update:
            quantity = parse_quantity(update["quantity"])
            if quantity is None:
                message = f"quantity must be an integer from 0 to {MAX_QUANTITY}"
                return _rejection(frame_id_text, "invalid_quantity", message)
            values["quantity"] = quantity
        if "price" in update:
            cents = parse_price_cents(update["price"])
            if cents is None:
                message = "price must be a non-negative decimal string with at most two places"
                return _rejection(frame_id_text, "invalid_price", message)
            values["price_cents"] = cents

        old_quantity, old_cents, old_updated_us = current
        if (
            values.get("quantity", old_quantity) == old_quantity
            and values.get("price_cents", old_cents) == old_cents
        ):
            return {
                "frame_id": frame_id_text,
                "status": "unchanged",
                "updated_at": format_us(old_updated_us),
            }
        updated_at = self._catalogue.update(number, values)
        return {"frame_id": frame_id_text, "status": "updated", "updated_at": updated_at}
