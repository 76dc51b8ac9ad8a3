"""The stock-source contract that every adapter implements.

An adapter reads one stock source (a file, a database, a feed) and returns its
rows in one normalised shape, plus the rows it could not read and why. The
engine never handles the source's own format, and an adapter never calls
Eyekiosk.

Adapters are found through the entry-point group ``eyekiosk_sync.adapters``:
the entry point's name is the alias that ``adapter = "…"`` in a job's source
table selects, and its value is the adapter class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

KEY = "key"
QUANTITY = "quantity"
PRICE_CENTS = "price_cents"
NORMALISED_COLUMNS = (KEY, QUANTITY, PRICE_CENTS)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One source row that could not be read.

    Attributes:
        location: where the row is, e.g. ``stock.csv:14`` or ``llx_product rowid=12``.
        reason: why it was rejected, in words an operator can act on.
        key: the row's key when it could be read.
    """

    location: str
    reason: str
    key: str | None = None


@dataclass(slots=True)
class SourceResult:
    """The result of one read of a stock source.

    Attributes:
        rows: one row per key, columns ``key`` (pandas string, unique),
            ``quantity`` (Int64, 0 or more) and ``price_cents`` (Int64, missing
            where the source has no price). Prices are integer cents, which
            hold two-place decimals exactly and compare fast.
        rejections: rows left out, in source order.
        description: where the rows came from, for logs; never a password.
        total_rows: rows the source held before rejection.
    """

    rows: pd.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    description: str = ""
    total_rows: int = 0


def empty_rows() -> pd.DataFrame:
    """Return a normalised frame with no rows."""
    return pd.DataFrame(
        {
            KEY: pd.Series([], dtype="string"),
            QUANTITY: pd.Series([], dtype="Int64"),
            PRICE_CENTS: pd.Series([], dtype="Int64"),
        }
    )


class AdapterOptions(BaseModel):
    """Base of each adapter's options model; unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


OptionsT = TypeVar("OptionsT", bound=AdapterOptions)


@dataclass(frozen=True, slots=True)
class SourceContext:
    """The job and folders an adapter runs with.

    Attributes:
        job: name of the job the source belongs to.
        config_dir: folder of the TOML file; relative paths resolve against it.
        state_dir: folder the adapter may keep its own files in (caches, ETags).
    """

    job: str
    config_dir: Path
    state_dir: Path


AdapterT = TypeVar("AdapterT", bound="Adapter[Any]")


class Adapter(ABC, Generic[OptionsT]):
    """Base of every kind of adapter: validated options, a context, a description.

    Subclasses set ``options_model`` to their options class.
    """

    options_model: ClassVar[type[AdapterOptions]]

    def __init__(self, options: OptionsT, *, context: SourceContext) -> None:
        self.options = options
        self.context = context

    @classmethod
    def from_mapping(
        cls: type[AdapterT], options: Mapping[str, Any], *, context: SourceContext
    ) -> AdapterT:
        """Build the adapter from its raw TOML table, less ``adapter`` and ``name``.

        Raises:
            pydantic.ValidationError: when the options do not fit ``options_model``.
        """
        validated = cls.options_model.model_validate(dict(options))
        return cls(validated, context=context)

    @abstractmethod
    def describe(self) -> str:
        """Describe the adapter's source or destination for logs, never with a secret in it."""

    def close(self) -> None:
        """Release connections or files; the default has none."""


class StockSource(Adapter[OptionsT]):
    """A source of stock rows.

    Subclasses set ``options_model`` to their options class and implement
    ``read``. The engine builds one instance per job run and calls ``read``
    once, then ``close``.
    """

    @abstractmethod
    def read(self) -> SourceResult:
        """Read the whole source once.

        Returns:
            The normalised rows, the rejected rows with location and reason,
            and a description of the source.

        Raises:
            sync.errors.SourceError: when the source cannot be read at all.
                A row that fails on its own is a rejection, not an error.
        """


# Order sinks


@dataclass(frozen=True, slots=True)
class OrderDelivery:
    """One order handed to a sink.

    Attributes:
        order: the order as the Partner API returned it (``sync.models.Order``
            dumped to JSON-compatible types), with full details when the sink
            asked for them.
        prescriptions: the order's prescriptions (JSON-compatible dicts), empty
            unless the sink asked for them. They are patient data: a sink
            writes them to its destination and nowhere else.
    """

    order: dict[str, Any]
    prescriptions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return str(self.order["id"])


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of delivering one order to a sink.

    Attributes:
        order_id: the order's id.
        delivered: True once the destination stores the order durably.
        error: why delivery failed, without patient data; None when delivered.
    """

    order_id: str
    delivered: bool
    error: str | None = None


class OrderSink(Adapter[OptionsT]):
    """A destination for pulled orders: a folder, a database, an HTTP endpoint.

    The engine pulls orders from Eyekiosk, hands them to ``deliver`` in order of
    ``updated_at``, and advances its checkpoint only past orders the sink
    reported as delivered. The same order may be delivered again after a
    crash or a retry, so ``deliver`` must be idempotent on the order id.
    """

    #: Whether the engine should fetch ``GET /orders/{id}`` for each order.
    wants_details: ClassVar[bool] = True

    @property
    def wants_prescriptions(self) -> bool:
        """Whether the engine should fetch prescriptions (scope ``prescriptions:read``)."""
        return bool(getattr(self.options, "prescriptions", False))

    @abstractmethod
    def deliver(self, deliveries: Sequence[OrderDelivery]) -> list[DeliveryResult]:
        """Write the orders to the destination.

        Returns:
            One result per delivery, in the same order. A failed order does not
            stop the others.

        Raises:
            sync.errors.SinkError: when the destination is unreachable as a
                whole; the engine treats every order of the call as undelivered.
        """

    def booked_orders(self, order_ids: Sequence[str]) -> set[str] | None:
        """Return which of the orders the practice's system has booked against its stock.

        The no-oversell netting stops subtracting an order's quantities from a
        push once its order is booked. None, the default, means the sink cannot
        tell, and netting falls back to the job's settle window.
        """
        return None


# Order status sources


ORDER_ID = "order_id"
STATUS = "status"


@dataclass(slots=True)
class StatusResult:
    """The result of one read of an order status source.

    Attributes:
        rows: columns ``order_id`` and ``status`` (pandas string), one row per order.
        rejections: rows left out (unknown status word, missing order id).
        description: where the rows came from, for logs; never a password.
    """

    rows: pd.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    description: str = ""


class StatusSource(Adapter[OptionsT]):
    """A source of fulfilment statuses that the practice's system sets on kiosk orders.

    The engine compares each row with the order's status on Eyekiosk and sends
    ``PATCH /orders/{id}`` for the ones that moved along an allowed transition.
    """

    @abstractmethod
    def read_statuses(self) -> StatusResult:
        """Read every order status the source holds.

        Raises:
            sync.errors.SourceError: when the source cannot be read at all.
        """


__all__ = [
    "KEY",
    "NORMALISED_COLUMNS",
    "ORDER_ID",
    "PRICE_CENTS",
    "QUANTITY",
    "STATUS",
    "Adapter",
    "AdapterOptions",
    "DeliveryResult",
    "OrderDelivery",
    "OrderSink",
    "Rejection",
    "SourceContext",
    "SourceResult",
    "StatusResult",
    "StatusSource",
    "StockSource",
    "empty_rows",
]
