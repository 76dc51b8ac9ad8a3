"""Initial frames of the sandbox catalogue: from a practice's stock export, or generated.

Both sources yield rows through `FrameSource.rows`, which the catalogue inserts in
bulk. Frame numbers start at 1 and become ids such as `frm_00000001`.
"""

from __future__ import annotations

import csv
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger("sync.sandbox.seeding")

US_EXPORT_HEADER = (
    "Item Code",
    "UPC",
    "Brand",
    "Model",
    "Color Code",
    "Color",
    "Eye",
    "Bridge",
    "Temple",
    "On Hand",
    "Retail Price",
)
DEFAULT_CHANGE_SHARE = 0.05
DEFAULT_SEED = 20_261_204

BRANDS: dict[str, tuple[str, ...]] = {
    "Ray-Ban": ("RX5154", "RX5228", "RX7047", "RX6489", "RX5184"),
    "Oakley": ("OX8046", "OX3227", "OX8156", "OX5038"),
    "Persol": ("PO3007V", "PO3092V", "PO3166V"),
    "Gucci": ("GG0011O", "GG0396O", "GG0890O"),
    "Prada": ("PR 16MV", "PR 08WV", "PR 17WV"),
    "Tom Ford": ("FT5294", "FT5401", "FT5634-B"),
    "Carrera": ("CARRERA 8821", "CARRERA 2023T", "CARRERA 262"),
    "Lindberg": ("Strip 9704", "Spirit 2934", "Air Rim 7541"),
    "Silhouette": ("Momentum 5500", "Urban Fusion 5529", "TNG 2926"),
    "Michael Kors": ("MK4030", "MK4067U", "MK3032"),
}
COLOURS: tuple[tuple[str, str], ...] = (
    ("2000", "Shiny Black"),
    ("2012", "Havana"),
    ("5650", "Transparent Grey"),
    ("8059", "Matte Black"),
    ("001", "Black"),
    ("002", "Brown"),
    ("003", "Blue"),
    ("0154", "Gunmetal"),
    ("714", "Gold"),
    ("6000", "Tortoise"),
)
PRICE_POINTS_CENTS = np.array(
    [8900, 12899, 12900, 15900, 18999, 21900, 24900, 28899, 28900, 31900, 34999, 39900],
    dtype=np.int64,
)
# Multiplier coprime with 10**10, so (i * multiplier) mod 10**10 is unique per frame.
_UPC_MULTIPLIER = 7_919_000_003
_UPC_BODY_SPACE = 10**10
BRAND_NAMES = tuple(BRANDS)
ROW_CHUNK = 10_000


# sku, upc, brand, model, color_code, color_name, eye_size, bridge_size,
# temple_length, quantity, price_cents
SeedRow = tuple[
    str,
    str | None,
    str,
    str,
    str | None,
    str | None,
    int | None,
    int | None,
    int | None,
    int,
    int | None,
]


class FrameSource(Protocol):
    """Initial frames that the catalogue can load."""

    def __len__(self) -> int: ...

    def rows(self) -> Iterator[SeedRow]:
        """Yield one row per frame, in frame-number order."""
        ...


@dataclass
class SeedFrames:
    """Column lists of the initial frames, all of one length, in frame-number order."""

    sku: list[str] = field(default_factory=list)
    upc: list[str | None] = field(default_factory=list)
    brand: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    color_code: list[str | None] = field(default_factory=list)
    color_name: list[str | None] = field(default_factory=list)
    eye_size: list[int | None] = field(default_factory=list)
    bridge_size: list[int | None] = field(default_factory=list)
    temple_length: list[int | None] = field(default_factory=list)
    quantity: list[int] = field(default_factory=list)
    price_cents: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sku)

    def rows(self) -> Iterator[SeedRow]:
        """Yield one row per frame, in frame-number order."""
        return zip(
            self.sku,
            self.upc,
            self.brand,
            self.model,
            self.color_code,
            self.color_name,
            self.eye_size,
            self.bridge_size,
            self.temple_length,
            self.quantity,
            self.price_cents,
            strict=True,
        )


def _optional_text(value: str | None) -> str | None:
    text = (value or "").strip()
    return text or None


def _optional_int(value: str | None) -> int | None:
    try:
        return int((value or "").strip())
    except ValueError:
        return None


def _price_cents(value: str | None) -> int | None:
    try:
        price = Decimal((value or "").strip().lstrip("$"))
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0:
        return None
    return int((price * 100).to_integral_value())


def load_us_export(path: Path) -> SeedFrames:
    """Read a stock export in the US layout (see `US_EXPORT_HEADER`).

    A row's unreadable size or price becomes null and an unreadable or negative
    quantity becomes 0, so one bad cell does not drop the frame.

    Raises:
        ValueError: the file lacks a column of the US layout.
    """
    frames = SeedFrames()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in US_EXPORT_HEADER if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {US_EXPORT_HEADER}")
        for row in reader:
            _append_export_row(frames, row)
    logger.info("sandbox.seed.csv_loaded path=%s frames=%d", path, len(frames))
    return frames


def _append_export_row(frames: SeedFrames, row: dict[str, str]) -> None:
    frames.sku.append(row["Item Code"].strip())
    frames.upc.append(_optional_text(row["UPC"]))
    frames.brand.append(row["Brand"].strip())
    frames.model.append(row["Model"].strip())
    frames.color_code.append(_optional_text(row["Color Code"]))
    frames.color_name.append(_optional_text(row["Color"]))
    frames.eye_size.append(_optional_int(row["Eye"]))
    frames.bridge_size.append(_optional_int(row["Bridge"]))
    frames.temple_length.append(_optional_int(row["Temple"]))
    frames.quantity.append(max(_optional_int(row["On Hand"]) or 0, 0))
    frames.price_cents.append(_price_cents(row["Retail Price"]))


def apply_changes(frames: SeedFrames, share: float, seed: int) -> list[int]:
    """Change the quantity, price or both of `round(len * share)` frames, chosen by seed.

    Every chosen frame ends up different from its export row, so a sync from that
    export finds exactly that many changes.

    Returns:
        The 0-based positions of the changed frames, ascending.

    Raises:
        ValueError: share is outside 0..1.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"change share {share} is outside 0..1")
    rng = random.Random(seed)  # noqa: S311 - repeatable test data, not security
    chosen = sorted(rng.sample(range(len(frames)), round(len(frames) * share)))
    for position in chosen:
        mode = rng.choice(("quantity", "price", "both"))
        if mode in ("quantity", "both") or frames.price_cents[position] is None:
            frames.quantity[position] = _changed_quantity(frames.quantity[position], rng)
        if mode in ("price", "both") and frames.price_cents[position] is not None:
            frames.price_cents[position] = _changed_price(frames.price_cents[position], rng)
    return chosen


def _changed_quantity(quantity: int, rng: random.Random) -> int:
    delta = rng.choice((-3, -2, -1, 1, 2, 3))
    changed = quantity + delta
    return changed if changed >= 0 else quantity + abs(delta)


def _changed_price(cents: int | None, rng: random.Random) -> int:
    base = cents or 0
    delta = rng.choice((-1000, -500, -100, 100, 500, 1000))
    changed = base + delta
    return changed if changed >= 0 else base + abs(delta)


def ean13_check_digits(bodies: np.ndarray) -> np.ndarray:
    """Compute EAN-13 check digits for 12-digit bodies given as int64."""
    total = np.zeros(bodies.shape, dtype=np.int64)
    remaining = bodies.copy()
    # Walk digits from the right: the rightmost body digit has weight 3, then 1, 3, ...
    for position in range(12):
        weight = 3 if position % 2 == 0 else 1
        total += (remaining % 10) * weight
        remaining //= 10
    return (10 - total % 10) % 10


class GeneratedFrames:
    """Frames generated deterministically from a seed, kept as numpy columns.

    Rows are built one at a time in `rows`, so a million frames cost a few numpy
    arrays rather than millions of Python strings.

    Args:
        count: number of frames, 0 to 9,999,999.
        seed: seed of the generator.

    Raises:
        ValueError: count is outside 0..9,999,999.
    """

    def __init__(self, count: int, seed: int = DEFAULT_SEED) -> None:
        if not 0 <= count <= 9_999_999:
            raise ValueError(f"frame count {count} is outside 0..9999999")
        rng = np.random.default_rng(seed)
        self._count = count
        self._brand = rng.integers(0, len(BRAND_NAMES), count)
        self._model = rng.integers(0, 1_000, count)
        self._colour = rng.integers(0, len(COLOURS), count)
        self._eye = rng.integers(46, 59, count)
        self._bridge = rng.integers(14, 23, count)
        self._temple = rng.choice(np.array([135, 140, 145, 150]), count)
        self._quantity = np.clip(rng.integers(-2, 9, count), 0, None)
        self._price = rng.choice(PRICE_POINTS_CENTS, count)

        # UPCs: prefix 80 (an EAN prefix of Italy, home of many frame makers)
        index = np.arange(count, dtype=np.int64)
        bodies = 80 * _UPC_BODY_SPACE + (index * _UPC_MULTIPLIER + seed) % _UPC_BODY_SPACE
        self._upc = bodies * 10 + ean13_check_digits(bodies)

    def __len__(self) -> int:
        return self._count

    def rows(self) -> Iterator[SeedRow]:
        """Yield one row per frame, in frame-number order."""
        for start in range(0, self._count, ROW_CHUNK):
            stop = min(start + ROW_CHUNK, self._count)
            columns = zip(
                self._upc[start:stop].tolist(),
                self._brand[start:stop].tolist(),
                self._model[start:stop].tolist(),
                self._colour[start:stop].tolist(),
                self._eye[start:stop].tolist(),
                self._bridge[start:stop].tolist(),
                self._temple[start:stop].tolist(),
                self._quantity[start:stop].tolist(),
                self._price[start:stop].tolist(),
                strict=True,
            )
            for offset, (upc, brand, model, colour, eye, bridge, temple, qty, cents) in enumerate(
                columns
            ):
                brand_name = BRAND_NAMES[brand]
                models = BRANDS[brand_name]
                code, name = COLOURS[colour]
                yield (
                    f"FR-{start + offset + 1:07d}",
                    f"{upc:013d}",
                    brand_name,
                    models[model % len(models)],
                    code,
                    name,
                    eye,
                    bridge,
                    temple,
                    qty,
                    cents,
                )


def generate_frames(count: int, seed: int = DEFAULT_SEED) -> GeneratedFrames:
    """Generate count frames deterministically from seed.

    SKUs are `FR-0000001`-style, UPCs are unique 13-digit EANs with a valid check
    digit, prices are USD price points.

    Raises:
        ValueError: count is negative or above 9,999,999.
    """
    return GeneratedFrames(count, seed)
