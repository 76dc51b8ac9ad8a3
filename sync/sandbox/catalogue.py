"""Frame store of the sandbox: an in-memory SQLite table built to page through a million rows.

Frames are keyed by an integer number, exposed as ids like `frm_00000001`. Lists
are ordered by `(updated_at, number)`, which an index covers, and that order is
the `(updated_at, id)` order of the contract because ids are zero-padded.

Paging with `LIMIT ? OFFSET ?` makes SQLite step over `offset` rows on every
page, so a full scan would be quadratic. `PageCursorCache` remembers the key of
the last row of each page served, and a request for the next offset continues
from that key. An entry is dropped when a write moves a row at or before its key,
which keeps the result identical to plain offset paging.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sortedcontainers import SortedDict

from sync.sandbox.clock import MonotonicClock, format_us
from sync.sandbox.seeding import FrameSource

logger = logging.getLogger("sync.sandbox.catalogue")

FRAME_ID_PATTERN = re.compile(r"^frm_(\d{8,})$")
CURRENCY = "USD"
INSERT_CHUNK = 50_000
# Seeded frames are stamped one second apart, the last an hour before the sandbox starts.
SEED_SPACING_US = 1_000_000
SEED_AGE_US = 3_600_000_000
CURSOR_CACHE_FILTERS = 64
CURSOR_CACHE_OFFSETS = 64

_COLUMNS = (
    "number, sku, upc, brand, model, color_code, color_name, eye_size, bridge_size, "
    "temple_length, quantity, price_cents, currency, updated_at"
)
_SCHEMA = """
CREATE TABLE frames (
    number INTEGER PRIMARY KEY,
    sku TEXT NOT NULL,
    upc TEXT,
    brand TEXT NOT NULL,
    brand_key TEXT NOT NULL,
    model TEXT NOT NULL,
    color_code TEXT,
    color_name TEXT,
    eye_size INTEGER,
    bridge_size INTEGER,
    temple_length INTEGER,
    quantity INTEGER NOT NULL,
    price_cents INTEGER,
    currency TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"""
_INDEXES = (
    "CREATE INDEX frames_order ON frames (updated_at, number)",
    "CREATE INDEX frames_sku ON frames (sku)",
)
# Fields that admin calls may set, with the column each maps to.
SETTABLE_FIELDS = {
    "sku": "sku",
    "upc": "upc",
    "brand": "brand",
    "model": "model",
    "color_code": "color_code",
    "color_name": "color_name",
    "eye_size": "eye_size",
    "bridge_size": "bridge_size",
    "temple_length": "temple_length",
    "quantity": "quantity",
    "price_cents": "price_cents",
    "currency": "currency",
}

SortKey = tuple[int, int]


def frame_id(number: int) -> str:
    """Format a frame number as its API id."""
    return f"frm_{number:08d}"


def frame_number(frame_id_text: str) -> int | None:
    """Parse an API frame id into its number, or None when it has not the id form."""
    match = FRAME_ID_PATTERN.match(frame_id_text)
    return int(match.group(1)) if match else None


def format_cents(cents: int | None) -> str | None:
    """Format integer cents as a two-place decimal string."""
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def row_to_frame(row: Sequence[Any]) -> dict[str, Any]:
    """Build the wire form of a frame from a row selected with `_COLUMNS`."""
    quantity = row[10]
    return {
        "id": frame_id(row[0]),
        "sku": row[1],
        "upc": row[2],
        "brand": row[3],
        "model": row[4],
        "color_code": row[5],
        "color_name": row[6],
        "eye_size": row[7],
        "bridge_size": row[8],
        "temple_length": row[9],
        "quantity": quantity,
        "in_stock": quantity > 0,
        "price": format_cents(row[11]),
        "currency": row[12],
        "updated_at": format_us(row[13]),
    }


@dataclass(frozen=True)
class FrameFilter:
    """Filters of the frames list; None means the filter is not set."""

    brand: str | None = None
    in_stock: bool | None = None
    updated_since_us: int | None = None

    def where(self) -> tuple[str, list[Any]]:
        """Build the SQL condition and its parameters."""
        clauses = ["1"]
        params: list[Any] = []
        if self.brand is not None:
            clauses.append("brand_key = ?")
            params.append(self.brand.lower())
        if self.in_stock is not None:
            clauses.append("quantity > 0" if self.in_stock else "quantity = 0")
        if self.updated_since_us is not None:
            clauses.append("updated_at >= ?")
            params.append(self.updated_since_us)
        return " AND ".join(clauses), params


class PageCursorCache:
    """Keys of the last row of recently served pages, per filter and end offset.

    An entry `(filter, offset) -> key` means: under that filter, exactly `offset`
    rows sort at or before `key`. It stays true until a write moves a row whose
    old or new key is at or before `key`; `invalidate_from` drops those entries.
    """

    def __init__(self) -> None:
        self._by_filter: dict[FrameFilter, SortedDict] = {}

    def nearest(self, frame_filter: FrameFilter, offset: int) -> tuple[int, SortKey] | None:
        """Return the cached `(offset, key)` with the largest offset not above offset."""
        entries = self._by_filter.get(frame_filter)
        if not entries:
            return None
        position = entries.bisect_right(offset)
        if position == 0:
            return None
        cached_offset = entries.keys()[position - 1]
        return cached_offset, entries[cached_offset]

    def store(self, frame_filter: FrameFilter, offset: int, key: SortKey) -> None:
        """Remember that offset rows under frame_filter end at key."""
        entries = self._by_filter.pop(frame_filter, None) or SortedDict()
        # Reinserting moves the filter to the end, so the dict's order is least recently used.
        self._by_filter[frame_filter] = entries
        entries[offset] = key
        if len(entries) > CURSOR_CACHE_OFFSETS:
            del entries[entries.keys()[0]]
        if len(self._by_filter) > CURSOR_CACHE_FILTERS:
            del self._by_filter[next(iter(self._by_filter))]

    def invalidate_from(self, key: SortKey) -> None:
        """Drop every entry whose key is at or after key."""
        for entries in self._by_filter.values():
            stale = [offset for offset, cached in entries.items() if cached >= key]
            for offset in stale:
                del entries[offset]

    def clear(self) -> None:
        """Drop every entry."""
        self._by_filter.clear()


class FrameCatalogue:
    """Frames in an in-memory SQLite database, guarded by one lock.

    Args:
        clock: source of `updated_at` for every write.
    """

    def __init__(self, clock: MonotonicClock) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._cursors = PageCursorCache()
        self._totals: dict[FrameFilter, int] = {}
        self._count = 0
        self._create_table()

    def _create_table(self) -> None:
        self._db.execute("DROP TABLE IF EXISTS frames")
        self._db.execute(_SCHEMA)

    # Seeding

    def load(self, frames: FrameSource) -> None:
        """Replace every frame with frames, numbered from 1, updated over the past.

        Frame n gets `updated_at` n seconds after a common start, and the last one
        an hour before now, as if the catalogue had been edited over time. So the
        initial order is the id order, every later write sorts after every seeded
        frame, and a client's overlap window of a few seconds reads back only a
        few seeded frames rather than all of them.
        """
        count = len(frames)
        start_us = self._clock.now_us() - SEED_AGE_US - count * SEED_SPACING_US
        with self._lock:
            self._create_table()
            self._db.execute("BEGIN")
            for rows in _chunks(_seed_rows(frames, start_us), INSERT_CHUNK):
                self._db.executemany(
                    "INSERT INTO frames VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
            self._db.execute("COMMIT")
            for statement in _INDEXES:
                self._db.execute(statement)
            self._count = count
            self._forget_paging()
        self._clock.advance_past(start_us + count * SEED_SPACING_US)
        logger.info("sandbox.catalogue.loaded frames=%d", count)

    def _forget_paging(self) -> None:
        self._cursors.clear()
        self._totals.clear()

    # Reads

    def __len__(self) -> int:
        return self._count

    def get(self, number: int) -> dict[str, Any] | None:
        """Return the wire form of frame number, or None when it does not exist."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM frames WHERE number = ?",  # noqa: S608 - constant columns
                (number,),
            ).fetchone()
        return row_to_frame(row) if row else None

    def find_by_sku(self, sku: str) -> dict[str, Any] | None:
        """Return the wire form of the first frame with this SKU, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM frames WHERE sku = ? ORDER BY number LIMIT 1",  # noqa: S608 - constant columns
                (sku,),
            ).fetchone()
        return row_to_frame(row) if row else None

    def page(
        self, frame_filter: FrameFilter, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Return one page of frames in `(updated_at, id)` order and the filtered total."""
        where, params = frame_filter.where()
        with self._lock:
            total = self._total(frame_filter, where, params)
            rows = self._page_rows(frame_filter, where, params, limit, offset)
            if rows:
                last = rows[-1]
                self._cursors.store(frame_filter, offset + len(rows), (last[13], last[0]))
        return [row_to_frame(row) for row in rows], total

    def _total(self, frame_filter: FrameFilter, where: str, params: list[Any]) -> int:
        if frame_filter == FrameFilter():
            return self._count
        if frame_filter not in self._totals:
            sql = f"SELECT COUNT(*) FROM frames WHERE {where}"  # noqa: S608 - built from constants
            self._totals[frame_filter] = self._db.execute(sql, params).fetchone()[0]
        return self._totals[frame_filter]

    def _page_rows(
        self, frame_filter: FrameFilter, where: str, params: list[Any], limit: int, offset: int
    ) -> list[Any]:
        nearest = self._cursors.nearest(frame_filter, offset)
        if nearest is not None:
            cached_offset, (updated_at, number) = nearest
            where = f"{where} AND (updated_at, number) > (?, ?)"
            params = [*params, updated_at, number]
            offset -= cached_offset
        sql = (
            f"SELECT {_COLUMNS} FROM frames WHERE {where} "  # noqa: S608 - built from constants
            "ORDER BY updated_at, number LIMIT ? OFFSET ?"
        )
        return self._db.execute(sql, [*params, limit, offset]).fetchall()

    # Writes

    def update(self, number: int, values: dict[str, Any], updated_at_us: int | None = None) -> str:
        """Set columns of frame number and stamp it with updated_at_us or the clock's next value.

        Args:
            number: frame number.
            values: column name to new value; names must be in `SETTABLE_FIELDS`.
            updated_at_us: timestamp to store; None takes `clock.now_us()`.

        Returns:
            The stored `updated_at`, formatted.

        Raises:
            KeyError: the frame does not exist, or a column name is not settable.
        """
        unknown = set(values) - set(SETTABLE_FIELDS)
        if unknown:
            raise KeyError(f"frame fields {sorted(unknown)} cannot be set")
        with self._lock:
            old = self._db.execute(
                "SELECT updated_at FROM frames WHERE number = ?", (number,)
            ).fetchone()
            if old is None:
                raise KeyError(frame_id(number))
            stamp = self._clock.now_us() if updated_at_us is None else updated_at_us
            self._write(number, {**values, "updated_at": stamp})
            self._after_write(min((old[0], number), (stamp, number)))
        return format_us(stamp)

    def _write(self, number: int, values: dict[str, Any]) -> None:
        assignments = [f"{column} = ?" for column in values]
        params = list(values.values())
        if "brand" in values:
            assignments.append("brand_key = ?")
            params.append(str(values["brand"]).lower())
        sql = f"UPDATE frames SET {', '.join(assignments)} WHERE number = ?"  # noqa: S608 - settable columns only
        self._db.execute(sql, [*params, number])

    def _after_write(self, lowest_key: SortKey) -> None:
        self._cursors.invalidate_from(lowest_key)
        self._totals.clear()

    def current_values(self, number: int) -> tuple[int, int | None, int] | None:
        """Return `(quantity, price_cents, updated_at_us)` of frame number, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT quantity, price_cents, updated_at FROM frames WHERE number = ?", (number,)
            ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def first_in_stock_from(self, number: int) -> int | None:
        """Return the first in-stock frame number at or after number, wrapping to 1."""
        sql = "SELECT number FROM frames WHERE number >= ? AND quantity > 0 ORDER BY number LIMIT 1"
        with self._lock:
            row = self._db.execute(sql, (number,)).fetchone()
            if row is None:
                row = self._db.execute(sql, (1,)).fetchone()
        return row[0] if row else None

    @property
    def lock(self) -> threading.RLock:
        """Lock that callers hold to make several reads and writes one atomic step."""
        return self._lock


def _seed_rows(frames: FrameSource, start_us: int) -> Iterator[tuple[Any, ...]]:
    for number, row in enumerate(frames.rows(), start=1):
        sku, upc, brand, *rest = row
        stamp = start_us + number * SEED_SPACING_US
        yield (number, sku, upc, brand, brand.lower(), *rest, CURRENCY, stamp)


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
