"""Keep the state database's copy of Eyekiosk's frame catalogue current.

An incremental refresh asks for frames updated since the stored watermark,
less an overlap window, so frames that share the watermark's second are read
again rather than missed. A full rescan reads every frame and drops the frames
Eyekiosk no longer has.

Limit/offset paging over a list that changes while it is read can skip an
item: when a frame on an earlier page is updated it moves to the end and every
later frame shifts one place forward. A pass that saw fewer distinct frames
than the list's final ``total`` is therefore repeated, and a full rescan that
stays incomplete deletes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pandas as pd

from sync.client import PartnerClient
from sync.keys import STRING_DTYPE, composite_key, normalise_gtin
from sync.models import Frame
from sync.state import MirrorRow, StateStore

log = logging.getLogger("eyekiosk_sync.mirror")

MAX_PASSES = 3


@dataclass(slots=True)
class RefreshResult:
    """What one mirror refresh did.

    Attributes:
        full: whether every frame was read.
        fetched: frames received, counting repeats across passes.
        passes: listing passes made; more than one means the list moved while paging.
        deleted: frames dropped from the mirror because Eyekiosk no longer lists them.
        complete: whether the last pass saw as many distinct frames as the list held.
        since: the ``updated_since`` value sent, or None for a full rescan.
    """

    full: bool
    fetched: int = 0
    passes: int = 0
    deleted: int = 0
    complete: bool = True
    since: datetime | None = None


def frame_to_row(frame: Frame) -> MirrorRow:
    """Convert a wire frame into the mirror's row, with the barcode as GTIN-14."""
    return frames_to_rows([frame])[0]


def frames_to_rows(frames: Sequence[Frame]) -> list[MirrorRow]:
    """Convert wire frames into mirror rows, with each barcode as GTIN-14 or None.

    The barcodes go through one vectorised ``normalise_gtin`` call, because one
    call per frame took most of a full rescan's time.
    """
    upcs = pd.Series([frame.upc or None for frame in frames], dtype=STRING_DTYPE)
    gtins = normalise_gtin(upcs).values
    return [
        MirrorRow(
            id=frame.id,
            sku=frame.sku,
            gtin14=None if pd.isna(gtin) else str(gtin),
            composite=composite_key(frame.brand, frame.model, frame.color_code, frame.eye_size),
            quantity=frame.quantity,
            price_cents=None if frame.price is None else int(frame.price * Decimal(100)),
            currency=frame.currency,
            updated_at=frame.updated_at,
        )
        for frame, gtin in zip(frames, gtins, strict=True)
    ]


def refresh_mirror(
    client: PartnerClient, store: StateStore, *, overlap_s: float, full: bool
) -> RefreshResult:
    """Bring the mirror up to date and advance the frames watermark.

    Args:
        client: the Partner API client.
        store: the open state store.
        overlap_s: seconds subtracted from the watermark before an incremental read.
        full: read every frame instead of those changed since the watermark.

    Returns:
        What was fetched and whether the read was complete.

    Raises:
        sync.errors.PartnerAPIError: when a page cannot be fetched after retries.
    """
    watermark = store.frames_watermark()
    full = full or watermark is None
    since = None if full or watermark is None else watermark - timedelta(seconds=overlap_s)
    result = RefreshResult(full=full, since=since)

    seen: set[str] = set()
    newest = watermark
    for _ in range(MAX_PASSES):
        result.passes += 1
        seen, total, pass_newest = _read_pass(client, store, since=since, result=result)
        if pass_newest is not None and (newest is None or pass_newest > newest):
            newest = pass_newest
        result.complete = len(seen) >= total
        if result.complete:
            break
        log.warning(
            "mirror.pass_incomplete distinct=%d total=%d pass=%d",
            len(seen),
            total,
            result.passes,
        )

    if full and result.complete:
        result.deleted = store.delete_frames_not_in(seen)
    elif full:
        log.warning("mirror.rescan_incomplete deletions skipped until the next full rescan")
    if newest is not None and result.complete:
        store.set_frames_watermark(newest)

    log.info(
        "mirror.refreshed full=%s fetched=%d passes=%d deleted=%d",
        result.full,
        result.fetched,
        result.passes,
        result.deleted,
    )
    return result


def _read_pass(
    client: PartnerClient,
    store: StateStore,
    *,
    since: datetime | None,
    result: RefreshResult,
) -> tuple[set[str], int, datetime | None]:
    seen: set[str] = set()
    newest: datetime | None = None
    pages = client.iter_frame_pages(updated_since=since)
    for page in pages:
        store.upsert_frames(frames_to_rows(page))
        result.fetched += len(page)
        for frame in page:
            seen.add(frame.id)
            if newest is None or frame.updated_at > newest:
                newest = frame.updated_at
    total = getattr(pages, "total", None)
    return seen, len(seen) if total is None else int(total), newest


__all__ = ["RefreshResult", "frame_to_row", "frames_to_rows", "refresh_mirror"]
