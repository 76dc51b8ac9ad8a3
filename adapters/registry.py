"""Find adapters through the ``eyekiosk_sync.adapters`` entry-point group."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from adapters.base import StockSource
from sync.errors import ConfigError

ENTRY_POINT_GROUP = "eyekiosk_sync.adapters"


@dataclass(frozen=True, slots=True)
class AdapterInfo:
    """One installed adapter: its alias, the class path, and the package that provides it."""

    alias: str
    target: str
    package: str
    version: str


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
            )
        )
    return infos


def load_adapter(alias: str) -> type[StockSource[Any]]:
    """Return the adapter class registered under ``alias``.

    Raises:
        ConfigError: when no adapter has that alias, or its class cannot be imported.
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
    if not (isinstance(adapter, type) and issubclass(adapter, StockSource)):
        raise ConfigError(f"adapter {alias!r} ({points[alias].value}) is not a StockSource")
    return adapter


__all__ = ["ENTRY_POINT_GROUP", "AdapterInfo", "installed_adapters", "load_adapter"]
