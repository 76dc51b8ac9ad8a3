"""Find adapters through the ``eyekiosk_sync.adapters`` entry-point group."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from adapters.base import OrderSink, StatusSource, StockSource
from sync.errors import ConfigError

ENTRY_POINT_GROUP = "eyekiosk_sync.adapters"


AdapterT = TypeVar("AdapterT")
KINDS: tuple[tuple[str, type], ...] = (
    ("stock source", StockSource),
    ("order sink", OrderSink),
    ("status source", StatusSource),
)


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """One installed adapter: alias, class path, kind and the package that provides it."""

    alias: str
    target: str
    package: str
    version: str
    kind: str


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return found


def installed_adapters() -> list[AdapterInfo]:
    """List every installed adapter, sorted by alias."""
    infos = []
    for alias, point in sorted(_entry_points().items()):
        dist = point.dist
        infos.append(
            AdapterInfo(
                alias=alias,
                target=point.value,
                package=dist.name if dist else "unknown",
                version=dist.version if dist else "unknown",
                kind=_kind(point),
            )
        )
    return infos


def _kind(point: EntryPoint) -> str:
    try:
        adapter = point.load()
    except Exception as error:
        return f"broken: {type(error).__name__}: {error}"
    for name, base in KINDS:
        if isinstance(adapter, type) and issubclass(adapter, base):
            return name
    return "not an adapter"


def load_adapter(alias: str, base: type[AdapterT] = StockSource) -> type[AdapterT]:  # type: ignore[assignment]
    """Return the adapter class registered under ``alias``, which must subclass ``base``.

    Raises:
        ConfigError: when no adapter has that alias, it cannot be imported, or it
            is another kind of adapter (an order sink where a stock source belongs).
    """
    points = _entry_points()
    if alias not in points:
        known = ", ".join(sorted(points)) or "none"
        raise ConfigError(
            f"no adapter named {alias!r} is installed (installed: {known}); "
            "check the adapter key or install the plugin that provides it"
        )
    try:
        adapter = points[alias].load()
    except Exception as error:
        raise ConfigError(f"adapter {alias!r} failed to import: {error}") from error
    if not (isinstance(adapter, type) and issubclass(adapter, base)):
        raise ConfigError(
            f"adapter {alias!r} ({points[alias].value}) is not a {base.__name__}; "
            "check that the alias is used in the right table"
        )
    return adapter


__all__ = ["ENTRY_POINT_GROUP", "AdapterInfo", "installed_adapters", "load_adapter"]
