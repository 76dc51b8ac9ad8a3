"""Wire models of the Eyekiosk Partner API, as written down in docs/partner-api.md.

Every model ignores unknown fields, so a field that Eyekiosk adds breaks nothing.
A correction to the contract is a change to this module, the doc page and the
sandbox, which serves these same models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)

API_PREFIX = "/api/v1/partner"
MAX_PAGE_LIMIT = 500
DEFAULT_PAGE_LIMIT = 50
MAX_INVENTORY_BATCH = 100
MAX_QUANTITY = 100_000

ORDER_STATUSES = ("pending", "in_progress", "completed", "shipped", "cancelled")
OrderStatus = Literal["pending", "in_progress", "completed", "shipped", "cancelled"]

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"in_progress", "cancelled"}),
    "in_progress": frozenset({"completed", "shipped", "cancelled"}),
    "completed": frozenset({"shipped"}),
    "shipped": frozenset(),
    "cancelled": frozenset(),
}

WEBHOOK_EVENTS = ("order.created", "order.status_changed", "order.completed", "inventory.updated")
WebhookEventType = Literal[
    "order.created", "order.status_changed", "order.completed", "inventory.updated"
]

API_SCOPES = (
    "orders:read",
    "orders:full",
    "frames:read",
    "prescriptions:read",
    "inventory:write",
    "webhooks:read",
    "webhooks:write",
)
IDENTITY_SCOPES = ("openid", "email", "profile")


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a Z suffix."""
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_timestamp, return_type=str),
]


def _two_places(value: Decimal) -> Decimal:
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{value} has more than two decimal places")
    return value.quantize(Decimal("0.01"))


Money = Annotated[
    Decimal,
    AfterValidator(_two_places),
    PlainSerializer(lambda value: f"{value:.2f}", return_type=str),
]
DecimalText = Annotated[Decimal, PlainSerializer(str, return_type=str)]


class WireModel(BaseModel):
    """Base of every Partner API model: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


ItemT = TypeVar("ItemT", bound=WireModel)


# Lists


class Pagination(WireModel):
    limit: int
    offset: int
    total: int


class Page(WireModel, Generic[ItemT]):
    """List envelope: one page of items and where it sits in the whole list."""

    data: list[ItemT]
    pagination: Pagination


# Errors


class ErrorDetail(WireModel):
    code: str
    message: str = ""
    required_scope: str | None = None


class ErrorBody(WireModel):
    error: ErrorDetail


# Frames


class Frame(WireModel):
    id: str
    sku: str
    upc: str | None = None
    brand: str = ""
    model: str = ""
    color_code: str | None = None
    color_name: str | None = None
    eye_size: int | None = None
    bridge_size: int | None = None
    temple_length: int | None = None
    quantity: int = Field(ge=0)
    in_stock: bool | None = None
    price: Money | None = None
    currency: str = "USD"
    updated_at: UtcDatetime


# Inventory


class InventoryUpdate(WireModel):
    frame_id: str
    quantity: int | None = None
    price: Money | None = None


class InventoryBatch(WireModel):
    updates: list[InventoryUpdate] = Field(min_length=1)


class ItemError(WireModel):
    code: str
    message: str = ""


class InventoryResult(WireModel):
    frame_id: str
    status: Literal["updated", "unchanged", "rejected"]
    updated_at: UtcDatetime | None = None
    error: ItemError | None = None


class InventoryResponse(WireModel):
    results: list[InventoryResult]
    updated: int = 0
    rejected: int = 0


# Orders


class Customer(WireModel):
    name: str | None = None
    email: str | None = None


class OrderItem(WireModel):
    frame_id: str
    sku: str | None = None
    upc: str | None = None
    quantity: int = Field(ge=1)
    unit_price: Money | None = None


class Payment(WireModel):
    method: str | None = None
    status: str | None = None
    amount: Money | None = None


class Order(WireModel):
    id: str
    status: OrderStatus
    created_at: UtcDatetime
    updated_at: UtcDatetime
    currency: str = "USD"
    total: Money | None = None
    customer: Customer | None = None
    items: list[OrderItem] = Field(default_factory=list)
    has_prescription: bool = False
    payment: Payment | None = None


class OrderStatusUpdate(WireModel):
    status: OrderStatus


# Prescriptions


class EyeRx(WireModel):
    sphere: DecimalText | None = None
    cylinder: DecimalText | None = None
    axis: int | None = None
    add: DecimalText | None = None


class PupillaryDistance(WireModel):
    binocular: DecimalText | None = None
    od: DecimalText | None = None
    os: DecimalText | None = None


class SegmentHeight(WireModel):
    od: DecimalText | None = None
    os: DecimalText | None = None


class Prescription(WireModel):
    id: str
    order_id: str
    created_at: UtcDatetime
    od: EyeRx = Field(default_factory=EyeRx)
    os: EyeRx = Field(default_factory=EyeRx)
    pd: PupillaryDistance = Field(default_factory=PupillaryDistance)
    segment_height: SegmentHeight = Field(default_factory=SegmentHeight)


# Webhooks


class DeliveryStatus(WireModel):
    last_delivery_at: UtcDatetime | None = None
    last_status_code: int | None = None
    failed_deliveries: int = 0


class Webhook(WireModel):
    id: str
    url: str
    events: list[WebhookEventType]
    enabled: bool = True
    created_at: UtcDatetime
    delivery_status: DeliveryStatus = Field(default_factory=DeliveryStatus)


class WebhookCreated(Webhook):
    """A new subscription; the only response that carries the signing secret."""

    secret: str = Field(repr=False)


class WebhookCreate(WireModel):
    url: str
    events: list[WebhookEventType] = Field(min_length=1)
    enabled: bool = True


class WebhookPatch(WireModel):
    url: str | None = None
    events: list[WebhookEventType] | None = None
    enabled: bool | None = None


class WebhookEvent(WireModel):
    id: str
    type: WebhookEventType
    created_at: UtcDatetime
    data: dict[str, Any] = Field(default_factory=dict)


# OAuth


class TokenResponse(WireModel):
    access_token: str = Field(repr=False)
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int = 3600
    refresh_token: str | None = Field(default=None, repr=False)
    scope: str = ""


class DiscoveryDocument(WireModel):
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    scopes_supported: list[str] = Field(default_factory=list)
    code_challenge_methods_supported: list[str] = Field(default_factory=list)
    token_endpoint_auth_methods_supported: list[str] = Field(default_factory=list)
