"""The sandbox's whole state, and the admin operations that tests call in process.

`SandboxStore` owns the catalogue, orders, webhooks, tokens, faults and request
counts. The HTTP routes in `api.py`, `oauth.py` and `admin.py` call into it, and
in-process tests call the same methods directly.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.sandbox.catalogue import SETTABLE_FIELDS, FrameCatalogue, frame_id, frame_number
from sync.sandbox.clock import MonotonicClock, parse_timestamp
from sync.sandbox.faults import FaultInjector, make_rule
from sync.sandbox.inventory import InventoryDesk, parse_price_cents
from sync.sandbox.oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, OAuthServer
from sync.sandbox.orders import OrderBook
from sync.sandbox.sales import SalesGenerator, SaleSimulator
from sync.sandbox.seeding import (
    DEFAULT_CHANGE_SHARE,
    DEFAULT_SEED,
    FrameSource,
    apply_changes,
    generate_frames,
    load_us_export,
)
from sync.sandbox.tokens import DEFAULT_ACCESS_TOKEN_TTL, TokenStore
from sync.sandbox.webhooks import Delivery, WebhookHub

logger = logging.getLogger("sync.sandbox.store")

PACKAGED_EXPORT = Path(__file__).resolve().parent.parent / "data" / "stock_export_us.csv"


@dataclass(frozen=True)
class SandboxOptions:
    """How to seed and configure a sandbox.

    Attributes:
        seed_csv: stock export in the US layout to seed from. When both seed_csv
            and frames are None, the export packaged in `sync/data/` is used.
        change_share: share of CSV frames, 0 to 1, that get another quantity or
            price than the export, so a sync finds that many changes.
        frames: number of generated frames; excludes seed_csv.
        seed: seed of every random choice (changed frames, generated frames, sales).
        client_id: id of the one registered OAuth client.
        client_secret: its secret.
        token_ttl: access token lifetime in seconds.
        auto_consent: approve authorization requests without the consent page.
        orders_per_minute: rate of simulated kiosk sales made in the background
            while the store runs; 0 makes none.
    """

    seed_csv: Path | None = None
    change_share: float = DEFAULT_CHANGE_SHARE
    frames: int | None = None
    seed: int = DEFAULT_SEED
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL
    auto_consent: bool = False
    orders_per_minute: float = 0.0

    def __post_init__(self) -> None:
        if self.seed_csv is not None and not isinstance(self.seed_csv, Path):
            # Accept a str path too; the dataclass is frozen, hence object.__setattr__.
            object.__setattr__(self, "seed_csv", Path(self.seed_csv))
        if self.seed_csv is not None and self.frames is not None:
            raise ValueError("give seed_csv or frames, not both")
        if not 0.0 <= self.change_share <= 1.0:
            raise ValueError(f"change_share {self.change_share} is outside 0..1")
        if self.token_ttl < 1:
            raise ValueError(f"token_ttl {self.token_ttl} must be at least 1 second")
        if self.orders_per_minute < 0:
            raise ValueError(f"orders_per_minute {self.orders_per_minute} must not be negative")

    def __repr__(self) -> str:
        return (
            f"SandboxOptions(seed_csv={self.seed_csv!r}, change_share={self.change_share}, "
            f"frames={self.frames}, seed={self.seed}, client_id={self.client_id!r}, "
            f"token_ttl={self.token_ttl}, auto_consent={self.auto_consent}, "
            f"orders_per_minute={self.orders_per_minute})"
        )


class SandboxStore:
    """Every piece of sandbox state, seeded from options.

    Args:
        options: seeding and OAuth settings.
    """

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        self.clock = MonotonicClock()
        self.catalogue = FrameCatalogue(self.clock)
        self.orders = OrderBook(self.clock)
        self.webhooks = WebhookHub(self.clock)
        self.tokens = TokenStore(self.options.token_ttl)
        self.oauth = OAuthServer(
            self.tokens,
            client_id=self.options.client_id,
            client_secret=self.options.client_secret,
            auto_consent=self.options.auto_consent,
        )
        self.faults = FaultInjector()
        self.inventory = InventoryDesk(self.catalogue, self.webhooks, self.clock)
        self.sales = SaleSimulator(self.catalogue, self.orders, self.webhooks, self.options.seed)
        self.sales_generator: SalesGenerator | None = None
        if self.options.orders_per_minute > 0:
            self.sales_generator = SalesGenerator(
                lambda: self.create_sales(1), self.options.orders_per_minute
            )
        self._counts_lock = threading.Lock()
        self._api_counts: Counter[str] = Counter()
        self._token_endpoint_count = 0
        self.changed_positions: list[int] = []
        self._seed_catalogue()

    # Lifecycle

    def _seed_catalogue(self) -> None:
        options = self.options
        if options.frames is not None:
            frames: FrameSource = generate_frames(options.frames, options.seed)
            self.changed_positions = []
        else:
            frames = load_us_export(options.seed_csv or PACKAGED_EXPORT)
            self.changed_positions = apply_changes(frames, options.change_share, options.seed)
        self.catalogue.load(frames)

    def start(self) -> None:
        """Start the webhook delivery thread and, when configured, the sales generator."""
        self.webhooks.start()
        if self.sales_generator is not None:
            self.sales_generator.start()

    def close(self) -> None:
        """Stop the sales generator, deliver queued webhooks and stop the delivery thread."""
        if self.sales_generator is not None and self.sales_generator.running:
            self.sales_generator.stop()
        self.webhooks.stop()

    def reset(self, *, reseed: bool = True) -> None:
        """Return to the freshly seeded state: frames, orders, webhooks, tokens, faults, counts.

        Args:
            reseed: reload the catalogue too. Reloading a million generated frames
                takes seconds; pass False to keep the frames as they are.
        """
        self.faults.clear()
        self.webhooks.reset()
        self.orders.reset()
        self.inventory.reset()
        self.tokens.reset()
        self.oauth.reset()
        self.oauth.auto_consent = self.options.auto_consent
        self.sales.reset()
        self.reset_counts()
        if reseed:
            self._seed_catalogue()
        logger.info("sandbox.store.reset reseed=%s", reseed)

    # Request counts

    def count_request(self, key: str) -> None:
        """Count one request under `"METHOD /path/template"`."""
        with self._counts_lock:
            self._api_counts[key] += 1

    def count_token_request(self) -> None:
        """Count one request to the token endpoint."""
        with self._counts_lock:
            self._token_endpoint_count += 1

    def request_counts(self) -> dict[str, int]:
        """Return Partner API request counts keyed `"METHOD /api/v1/partner/..."`."""
        with self._counts_lock:
            return dict(self._api_counts)

    def token_request_count(self) -> int:
        """Return the number of requests to the token endpoint."""
        with self._counts_lock:
            return self._token_endpoint_count

    def reset_counts(self) -> None:
        """Set every request count to zero."""
        with self._counts_lock:
            self._api_counts.clear()
            self._token_endpoint_count = 0
        self.oauth.token_requests.clear()

    # Tokens

    def mint_token(self, scopes: list[str] | tuple[str, ...], ttl: float | None = None) -> str:
        """Create an access token with exactly these scopes, skipping the OAuth flow."""
        return self.tokens.mint(scopes, ttl)

    def expire_token(self, token: str) -> bool:
        """Make an access token expired; return False when it is unknown."""
        return self.tokens.expire(token)

    def revoke_token(self, token: str) -> bool:
        """Revoke an access or refresh token; return False when it is unknown."""
        return self.tokens.revoke(token)

    def set_auto_consent(self, enabled: bool) -> None:
        """Switch auto-consent on or off."""
        self.oauth.auto_consent = enabled

    # Faults

    def inject_fault(self, kind: str, count: int = 1, **options: Any) -> None:
        """Make the next count matching requests fail or slow down; see `faults.make_rule`."""
        self.faults.add(make_rule(kind, count, **options))

    def clear_faults(self) -> None:
        """Drop every injected fault."""
        self.faults.clear()

    # Frames

    def get_frame(self, frame_id_text: str) -> dict[str, Any] | None:
        """Return a frame's wire form by id, or None when it does not exist."""
        number = frame_number(frame_id_text)
        return self.catalogue.get(number) if number is not None else None

    def find_frame(self, sku: str) -> dict[str, Any] | None:
        """Return a frame's wire form by SKU, or None when no frame has it."""
        return self.catalogue.find_by_sku(sku)

    def set_frame(self, frame_id_text: str, **fields: Any) -> dict[str, Any]:
        """Set wire fields of a frame as if changed on Eyekiosk's side, and return the frame.

        Fields are wire names (`quantity`, `price` as a decimal string, `brand`, ...).
        `updated_at` (ISO 8601) stores that timestamp, otherwise the write gets the
        clock's next one. A change of quantity or price fires `inventory.updated`.

        Raises:
            KeyError: the frame does not exist or a field cannot be set.
            ValueError: a value is invalid.
        """
        number = frame_number(frame_id_text)
        if number is None or self.catalogue.get(number) is None:
            raise KeyError(f"frame {frame_id_text} does not exist")
        values, stamp = _frame_columns(fields)
        self.catalogue.update(number, values, stamp)
        if "quantity" in values or "price_cents" in values:
            self.webhooks.emit("inventory.updated", {"frame_ids": [frame_id_text]})
        frame = self.catalogue.get(number)
        assert frame is not None
        return frame

    def touch_frames(self, frame_ids: list[str], updated_at: str | None = None) -> list[str]:
        """Stamp frames with updated_at (ISO 8601), or fresh clock values, changing nothing else.

        Returns:
            The stored `updated_at` of each frame, in the order given.

        Raises:
            KeyError: a frame does not exist.
            ValueError: updated_at is not ISO 8601 with an offset.
        """
        stamp = parse_timestamp(updated_at) if updated_at is not None else None
        stored = []
        for item in frame_ids:
            number = frame_number(item)
            if number is None or self.catalogue.get(number) is None:
                raise KeyError(f"frame {item} does not exist")
            stored.append(self.catalogue.update(number, {}, stamp))
        return stored

    def frame_ids_by_position(self, positions: list[int]) -> list[str]:
        """Map 0-based seed positions (as in `changed_positions`) to frame ids."""
        return [frame_id(position + 1) for position in positions]

    # Orders, webhooks, inventory log

    def create_sales(
        self, count: int = 1, *, frame_ids: list[str] | None = None, prescription: bool = True
    ) -> list[str]:
        """Create simulated kiosk sales and return the new order ids; see `SaleSimulator.sell`."""
        return [
            order.id
            for order in self.sales.sell(count, frame_ids=frame_ids, prescription=prescription)
        ]

    def inventory_batches(self) -> list[dict[str, Any]]:
        """Return every inventory batch applied since the last reset, oldest first."""
        return self.inventory.batches()

    def webhook_deliveries(self) -> list[Delivery]:
        """Return recent webhook delivery attempts, oldest first."""
        return self.webhooks.deliveries()

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until queued webhooks have been attempted; return False on timeout."""
        return self.webhooks.wait_idle(timeout)


def _frame_columns(fields: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Translate wire field names and values into catalogue columns and an updated_at stamp."""
    values = dict(fields)
    stamp_text = values.pop("updated_at", None)
    stamp = parse_timestamp(stamp_text) if stamp_text is not None else None
    if "price" in values:
        price = values.pop("price")
        cents = None if price is None else parse_price_cents(price)
        if price is not None and cents is None:
            raise ValueError(f"price {price!r} is not a non-negative decimal string")
        values["price_cents"] = cents
    if "quantity" in values and (not isinstance(values["quantity"], int) or values["quantity"] < 0):
        raise ValueError(f"quantity {values['quantity']!r} is not a non-negative integer")
    unknown = set(values) - set(SETTABLE_FIELDS)
    if unknown:
        raise KeyError(f"frame fields {sorted(unknown)} cannot be set")
    return values, stamp
