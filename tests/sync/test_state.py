"""Tests of the state database on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.errors import StateError
from sync.state import (
    BATCH_CONFIRMED,
    BATCH_PLANNED,
    BATCH_POSTED,
    MirrorRow,
    StateStore,
)
from tests.databases import mariadb_database, postgres_database

T0 = datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as opened:
            yield opened
        return
    databases = {"postgresql": postgres_database, "mariadb": mariadb_database}
    with databases[request.param]() as url, StateStore(url) as opened:
        yield opened


def _row(frame_id: str, quantity: int, *, at: datetime = T0) -> MirrorRow:
    return MirrorRow(
        id=frame_id,
        sku=f"SKU-{frame_id}",
        gtin14=None,
        composite=None,
        quantity=quantity,
        price_cents=1999,
        currency="USD",
        updated_at=at,
    )


def test_state_upsert_replaces_existing_frames(store: StateStore) -> None:
    """Upserting a frame twice keeps one row with the newer values."""
    store.upsert_frames([_row("frm_1", 1), _row("frm_2", 2)])
    store.upsert_frames([_row("frm_1", 5)])

    mirror = store.load_mirror().set_index("id")

    assert len(mirror) == 2
    assert mirror.loc["frm_1", "quantity"] == 5
    assert mirror.loc["frm_2", "price_cents"] == 1999


def test_state_watermark_round_trips_microseconds(store: StateStore) -> None:
    """The frames watermark comes back as the same aware UTC instant."""
    assert store.frames_watermark() is None

    store.set_frames_watermark(T0)

    assert store.frames_watermark() == T0


def test_state_delete_frames_not_in(store: StateStore) -> None:
    """A full rescan drops exactly the frames Eyekiosk no longer lists."""
    store.upsert_frames([_row("frm_1", 1), _row("frm_2", 2), _row("frm_3", 3)])

    deleted = store.delete_frames_not_in({"frm_1", "frm_3"})

    assert deleted == 1
    assert sorted(store.load_mirror()["id"]) == ["frm_1", "frm_3"]


def test_state_apply_accepted_updates_only_sent_fields(store: StateStore) -> None:
    """An accepted quantity-only update leaves the mirror's price untouched."""
    store.upsert_frames([_row("frm_1", 1)])

    store.apply_accepted([("frm_1", 4, None, T0 + timedelta(seconds=1))])

    mirror = store.load_mirror().set_index("id")
    assert mirror.loc["frm_1", "quantity"] == 4
    assert mirror.loc["frm_1", "price_cents"] == 1999


def test_state_journal_moves_batches_through_states(store: StateStore) -> None:
    """Planned and posted batches are open; confirmed ones are not."""
    run_id = store.start_run("shop", dry_run=False)
    store.plan_batches(
        run_id,
        "shop",
        [("k1", [{"frame_id": "frm_1", "quantity": 1}]), ("k2", [{"frame_id": "frm_2"}])],
    )
    store.set_batch_status("k1", BATCH_POSTED)
    store.set_batch_status("k2", BATCH_CONFIRMED, {"updated": 1})

    open_batches = store.open_batches("shop")

    assert [batch.idempotency_key for batch in open_batches] == ["k1"]
    assert open_batches[0].frame_ids == ["frm_1"]
    assert store.batch_counts("shop") == {BATCH_POSTED: 1, BATCH_CONFIRMED: 1}
    assert BATCH_PLANNED not in store.batch_counts("shop")


def test_state_unknown_batch_key_raises(store: StateStore) -> None:
    """Moving a batch that the journal does not hold is an error, not a silent no-op."""
    with pytest.raises(StateError, match="missing-key"):
        store.set_batch_status("missing-key", BATCH_CONFIRMED)


def test_state_runs_record_outcome_and_counts(store: StateStore) -> None:
    """A finished run keeps its outcome, counts and error; interrupted ones are marked."""
    done = store.start_run("shop", dry_run=False)
    store.finish_run(done, outcome="success", counts={"changed": 3})
    store.start_run("shop", dry_run=False)

    interrupted = store.mark_interrupted_runs("shop")
    runs = store.recent_runs("shop")

    assert interrupted == 1
    assert [run["outcome"] for run in runs] == ["interrupted", "success"]
    assert runs[1]["counts"] == {"changed": 3}


def test_state_open_twice_raises(tmp_path: Path) -> None:
    """Opening an open store is a programming error."""
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}").open()
    try:
        with pytest.raises(StateError):
            store.open()
    finally:
        store.close()


def test_state_upgrade_adds_composite_column(tmp_path: Path) -> None:
    """A state database without the composite column gains it and drops the watermark."""
    import sqlite3

    path = tmp_path / "state.db"
    with StateStore(f"sqlite:///{path}") as store:
        store.upsert_frames([_row("frm_1", 1)])
        store.set_frames_watermark(T0)
    connection = sqlite3.connect(path)
    connection.execute("DROP INDEX ix_mirror_frames_composite")
    connection.execute("ALTER TABLE mirror_frames DROP COLUMN composite")
    connection.commit()
    connection.close()

    with StateStore(f"sqlite:///{path}") as store:
        mirror = store.load_mirror()
        watermark = store.frames_watermark()

    assert "composite" in mirror.columns
    assert mirror["id"].tolist() == ["frm_1"]
    assert watermark is None
