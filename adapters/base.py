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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar, cast

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


class StockSource(ABC, Generic[OptionsT]):
    """A source of stock rows.

    Subclasses set ``options_model`` to their options class and implement
    ``read``. The engine builds one instance per job run and calls ``read``
    once, then ``close``.
    """

    options_model: ClassVar[type[AdapterOptions]]

    def __init__(self, options: OptionsT, *, context: SourceContext) -> None:
        self.options = options
        self.context = context

    @classmethod
    def from_mapping(
        cls, options: Mapping[str, Any], *, context: SourceContext
    ) -> StockSource[Any]:
        """Build the adapter from the raw TOML table of a job's source.

        Raises:
            pydantic.ValidationError: when the options do not fit ``options_model``.
        """
        validated = cls.options_model.model_validate(dict(options))
        return cls(cast(OptionsT, validated), context=context)

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

    @abstractmethod
    def describe(self) -> str:
        """Describe the source for logs and reports, never with a secret in it."""

    def close(self) -> None:
        """Release connections or files; the default has none."""


__all__ = [
    "KEY",
    "NORMALISED_COLUMNS",
    "PRICE_CENTS",
    "QUANTITY",
    "AdapterOptions",
    "Rejection",
    "SourceContext",
    "SourceResult",
    "StockSource",
    "empty_rows",
]
