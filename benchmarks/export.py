"""A US-layout stock export that matches the sandbox's generated frames, with controlled changes.

The rows come from ``sync.sandbox.seeding.generate_frames`` with the sandbox's
seed, so before any change the export equals the catalogue that
``eyekiosk-sync sandbox --frames N`` serves. Each call to ``change`` then makes
a given number of rows differ in quantity, price or both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sync.sandbox.seeding import DEFAULT_SEED, US_EXPORT_HEADER, generate_frames

# Deltas are positive, so a changed value never falls back to the value the sandbox holds.
QUANTITY_DELTAS = np.array([1, 2, 3], dtype=np.int64)
PRICE_DELTAS_CENTS = np.array([100, 500, 1000], dtype=np.int64)


class StockExport:
    """The export's rows, with the columns other than quantity and price kept as fixed text.

    Args:
        frames: number of frames, as passed to the sandbox's ``--frames``.
        seed: the sandbox's generator seed.
    """

    def __init__(self, frames: int, seed: int = DEFAULT_SEED) -> None:
        prefixes: list[str] = []
        quantities: list[int] = []
        prices: list[int] = []
        for row in generate_frames(frames, seed).rows():
            sku, upc, brand, model, code, colour, eye, bridge, temple, quantity, cents = row
            cells = [sku, upc, brand, model, code, colour, eye, bridge, temple]
            prefixes.append(_csv_line(["" if cell is None else str(cell) for cell in cells]))
            quantities.append(quantity)
            # Generated frames always have a price.
            prices.append(int(cents or 0))
        self._prefixes = prefixes
        self.quantities = np.array(quantities, dtype=np.int64)
        self.prices_cents = np.array(prices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._prefixes)

    def change(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Change the quantity, the price or both of ``count`` distinct rows.

        Returns:
            The 0-based positions of the changed rows, ascending.
        """
        positions = np.sort(rng.choice(len(self), size=count, replace=False))
        # 0 changes the quantity, 1 the price, 2 both.
        modes = rng.integers(0, 3, size=count)
        quantity_rows = positions[modes != 1]
        price_rows = positions[modes != 0]
        self.quantities[quantity_rows] += rng.choice(QUANTITY_DELTAS, size=len(quantity_rows))
        self.prices_cents[price_rows] += rng.choice(PRICE_DELTAS_CENTS, size=len(price_rows))
        return positions

    def write(self, path: Path) -> None:
        """Write the export with its header, replacing ``path``."""
        temporary = path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            handle.write(_csv_line(list(US_EXPORT_HEADER)) + "\n")
            lines = (
                f"{prefix},{quantity},{cents // 100}.{cents % 100:02d}\n"
                for prefix, quantity, cents in zip(
                    self._prefixes,
                    self.quantities.tolist(),
                    self.prices_cents.tolist(),
                    strict=True,
                )
            )
            handle.writelines(lines)
        temporary.replace(path)


def _csv_line(cells: list[str]) -> str:
    """Join cells into one CSV line, quoting those that need it, without the line break."""
    return ",".join(_quote(cell) for cell in cells)


def _quote(cell: str) -> str:
    if any(character in cell for character in ',"\r\n'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


__all__ = ["StockExport"]
