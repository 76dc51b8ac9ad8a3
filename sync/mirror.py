"""Keep the state database's copy of Eyekiosk's frame catalogue current.

An incremental refresh requests the frames updated since the stored watermark,
less an overlap window, so frames that share the watermark's second are read
again rather than missed. A full rescan reads every frame and drops the frames
Eyekiosk no longer has.

Plain limit/offset paging over a list that changes while it is read can skip
an item: a frame on an earlier page that is updated or deleted shifts every
later frame one place. The client's ``StampPager`` anchors each page on the
newest ``updated_at`` already read instead, so a changed frame is read again at
the end and a deleted one shifts nothing; a full rescan therefore sees every
frame that still exists when it ends, and may delete the rest.
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


@dataclass(slots=True)
class RefreshResult:
    """The outcome of one mirror refresh.

    Attributes:
        full: whether every frame was read.
        fetched: frames received; a frame that changed while the list was
            paged is received twice.
        pages: page requests made.
        deleted: frames dropped from the mirror because Eyekiosk no longer lists them.
        since: the ``updated_since`` value sent, or None for a full rescan.
    """

    full: bool
    fetched: int = 0
    pages: int = 0
    deleted: int = 0
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
        What was fetched and deleted.

    Raises:
        sync.errors.PartnerAPIError: when a page cannot be fetched after retries.
    """
    watermark = store.frames_watermark()
    full = full or watermark is None
    since = None if full or watermark is None else watermark - timedelta(seconds=overlap_s)
    result = RefreshResult(full=full, since=since)

    seen, newest, complete = _read_pages(client, store, since=since, result=result)
    if not complete:
        # The frames read are kept; deletions and the watermark wait for a whole read.
        log.warning("mirror.incomplete frames kept, deletions and watermark unchanged")
        return result
    if full:
        result.deleted = store.delete_frames_not_in(seen)
    if newest is not None and (watermark is None or newest > watermark):
        store.set_frames_watermark(newest)

    log.info(
        "mirror.refreshed full=%s fetched=%d pages=%d deleted=%d",
        result.full,
        result.fetched,
        result.pages,
        result.deleted,
    )
    return result


def _read_pages(
    client: PartnerClient,
    store: StateStore,
    *,
    since: datetime | None,
    result: RefreshResult,
) -> tuple[set[str], datetime | None, bool]:
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
    result.pages = pages.pages
    return seen, newest, pages.complete


__all__ = ["RefreshResult", "frame_to_row", "frames_to_rows", "refresh_mirror"]
