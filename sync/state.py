"""The state database: the frame mirror, bookmarks, run history and the batch journal.

Every read and write of the state goes through ``StateStore``. SQLite in the
state folder is the default; any SQLAlchemy URL works. The store keeps ids,
keys, counts and timestamps only: no tokens and no patient data.

Tables:
    mirror_frames   the local copy of Eyekiosk's frames (id, sku, gtin14, composite key,
                    quantity, price)
    bookmarks       named values per scope, e.g. the frames watermark or a job's cycle count
    runs            one row per cycle: start, end, outcome, counts, error
    batches         the plan/apply journal: each inventory batch with its idempotency
                    key, moving planned -> posted -> confirmed (or failed, superseded)
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from sync.errors import StateError

log = logging.getLogger("eyekiosk_sync.state")

GLOBAL_SCOPE = "global"
FRAMES_WATERMARK = "frames_watermark"
UPSERT_CHUNK = 2000
MIRROR_KEY_COLUMNS = ("sku", "gtin14", "composite")
MIRROR_DTYPES = {
    "id": "string",
    "sku": "string",
    "gtin14": "string",
    "composite": "string",
    "quantity": "Int64",
    "price_cents": "Int64",
}
# Rowid range read per query when loading the mirror from SQLite.
MIRROR_READ_CHUNK = 500_000


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class MirrorFrame(Base):
    __tablename__ = "mirror_frames"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sku: Mapped[str] = mapped_column(String(128), index=True)
    gtin14: Mapped[str | None] = mapped_column(String(14), index=True)
    composite: Mapped[str | None] = mapped_column(String(255), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    price_cents: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Bookmark(Base):
    __tablename__ = "bookmarks"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(default=False)
    counts: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str | None] = mapped_column(Text)


class Batch(Base):
    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    job: Mapped[str] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    payload: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


BATCH_PLANNED = "planned"
BATCH_POSTED = "posted"
BATCH_CONFIRMED = "confirmed"
BATCH_FAILED = "failed"
BATCH_SUPERSEDED = "superseded"
OPEN_BATCH_STATES = (BATCH_PLANNED, BATCH_POSTED)


@dataclass(frozen=True, slots=True)
class MirrorRow:
    """One frame as the mirror stores it."""

    id: str
    sku: str
    gtin14: str | None
    composite: str | None
    quantity: int
    price_cents: int | None
    currency: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OpenBatch:
    """A journal batch that was planned or posted but never confirmed."""

    id: int
    run_id: int
    idempotency_key: str
    status: str
    frame_ids: list[str]


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class StateStore:
    """Repository over the state database. Start with ``open``, end with ``close``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    # Lifecycle

    def open(self) -> StateStore:
        """Connect, create missing tables and return self.

        Raises:
            StateError: when the database cannot be opened or already is.
        """
        if self._engine is not None:
            raise StateError("the state database is already open")
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(self.url, pool_pre_ping=True)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            import sync.order_state  # noqa: F401 - declares the order tables on Base

            Base.metadata.create_all(engine)
            _add_missing_mirror_columns(engine)
        except SQLAlchemyError as error:
            raise StateError(f"cannot open the state database: {error}") from error
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        return self

    def close(self) -> None:
        """Release the connection pool.

        Raises:
            StateError: when the store is not open.
        """
        if self._engine is None:
            raise StateError("the state database is not open")
        self._engine.dispose()
        self._engine = None
        self._sessions = None

    def __enter__(self) -> StateStore:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise StateError("the state database is not open")
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error."""
        if self._sessions is None:
            raise StateError("the state database is not open")
        with self._sessions.begin() as session:
            yield session

    # Bookmarks

    def get_bookmark(self, scope: str, name: str) -> str | None:
        """Return the bookmark's value, or None when it was never set."""
        with self.session() as session:
            rows = session.scalars(
                select(Bookmark.value).where(Bookmark.scope == scope, Bookmark.name == name)
            ).all()
        if len(rows) > 1:
            raise StateError(f"bookmark {scope}/{name} is stored {len(rows)} times")
        return rows[0] if rows else None

    def set_bookmark(self, scope: str, name: str, value: str) -> None:
        """Store the bookmark's value, replacing the old one."""
        with self.session() as session:
            session.merge(Bookmark(scope=scope, name=name, value=value, updated_at=utcnow()))

    def frames_watermark(self) -> datetime | None:
        """Return the newest ``updated_at`` seen in a frames fetch, or None before the first."""
        value = self.get_bookmark(GLOBAL_SCOPE, FRAMES_WATERMARK)
        return datetime.fromisoformat(value) if value else None

    def set_frames_watermark(self, value: datetime) -> None:
        self.set_bookmark(GLOBAL_SCOPE, FRAMES_WATERMARK, value.astimezone(UTC).isoformat())

    # Mirror

    def upsert_frames(self, rows: Sequence[MirrorRow]) -> None:
        """Insert or replace frames in the mirror, in chunks, in one transaction."""
        if not rows:
            return
        if self.engine.dialect.name == "sqlite":
            self._upsert_sqlite_frames(rows)
            return
        # One statement with many parameter sets is compiled once and cached;
        # a multi-row VALUES statement was compiled again for every chunk.
        statement = self._upsert_statement()
        with self.session() as session:
            for start in range(0, len(rows), UPSERT_CHUNK):
                chunk = rows[start : start + UPSERT_CHUNK]
                session.execute(statement, [_row_dict(row) for row in chunk])

    def _upsert_sqlite_frames(self, rows: Sequence[MirrorRow]) -> None:
        """Upsert frames on SQLite through the sqlite3 connection, writing only what differs.

        A plain upsert sets every column, so SQLite rewrites the entries of all
        four indexes of each frame, even when its keys stay the same, and
        rewrites frames whose values did not change at all. An incremental
        refresh mostly reads frames that are already mirrored with the same
        keys, often with the same values (the ones this program posted). So
        the first statement inserts new frames and fully updates frames whose
        keys changed, and the second updates the other columns of the frames
        whose values differ, which touches no secondary index. The mirror ends
        up exactly as after a plain upsert.
        """
        stamp = _sqlite_datetime_processor(self.engine)
        parameters = [
            (
                row.id,
                row.sku,
                row.gtin14,
                row.composite,
                row.quantity,
                row.price_cents,
                row.currency,
                stamp(row.updated_at),
            )
            for row in rows
        ]
        values = [(quantity, price, currency, at, frame_id)
                  for frame_id, _, _, _, quantity, price, currency, at in parameters]  # fmt: skip
        with self.engine.begin() as connection:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(_SQLITE_UPSERT_NEW_OR_REKEYED, parameters)
                cursor.executemany(_SQLITE_UPDATE_VALUES, values)
            finally:
                cursor.close()

    def _upsert_statement(self) -> Any:
        dialect = self.engine.dialect.name
        table = _mirror_table()
        columns = (
            "sku",
            "gtin14",
            "composite",
            "quantity",
            "price_cents",
            "currency",
            "updated_at",
        )
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect == "sqlite" else pg_insert
            statement = insert(table)
            return statement.on_conflict_do_update(
                index_elements=["id"], set_={name: statement.excluded[name] for name in columns}
            )
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import insert as mysql_insert

            mysql_statement = mysql_insert(table)
            return mysql_statement.on_duplicate_key_update(
                {name: mysql_statement.inserted[name] for name in columns}
            )
        raise StateError(f"the state database dialect {dialect!r} is not supported")

    def apply_accepted(
        self, updates: Iterable[tuple[str, int | None, int | None, datetime]]
    ) -> None:
        """Record accepted inventory updates in the mirror, in the order given.

        Args:
            updates: (frame id, new quantity or None, new price in cents or None, updated_at).
        """
        with self.engine.begin() as connection:
            self._apply_accepted(connection, list(updates))

    def confirm_batch(
        self,
        key: str,
        updates: Iterable[tuple[str, int | None, int | None, datetime]],
        result: dict[str, Any],
    ) -> None:
        """Record a batch's accepted updates and mark it confirmed, in one transaction.

        Raises:
            StateError: when the journal does not hold exactly one batch with ``key``.
        """
        with self.engine.begin() as connection:
            self._apply_accepted(connection, list(updates))
            self._set_statuses(connection, [key], BATCH_CONFIRMED, result)

    def _apply_accepted(
        self, connection: Connection, accepted: list[tuple[str, int | None, int | None, datetime]]
    ) -> None:
        if not accepted:
            return
        # One executemany for every update: a None quantity or price keeps the
        # stored value through COALESCE. One UPDATE statement per frame made a
        # 10,000-frame cycle spend seconds here.
        if self.engine.dialect.name == "sqlite":
            # The same statement through the sqlite3 connection skips
            # SQLAlchemy's per-row parameter processing.
            stamp = _sqlite_datetime_processor(self.engine)
            rows = [
                (quantity, price_cents, stamp(updated_at), frame_id)
                for frame_id, quantity, price_cents, updated_at in accepted
            ]
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(_SQLITE_APPLY_ACCEPTED, rows)
            finally:
                cursor.close()
            return
        parameters = [
            {"b_id": frame_id, "b_quantity": quantity, "b_price_cents": price_cents,
             "b_updated_at": updated_at}
            for frame_id, quantity, price_cents, updated_at in accepted
        ]  # fmt: skip
        table = _mirror_table()
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                quantity=func.coalesce(bindparam("b_quantity", type_=Integer), table.c.quantity),
                price_cents=func.coalesce(
                    bindparam("b_price_cents", type_=BigInteger), table.c.price_cents
                ),
                updated_at=bindparam("b_updated_at"),
            )
        )
        connection.execute(statement, parameters)

    def delete_frames_not_in(self, keep_ids: set[str]) -> int:
        """Delete mirror frames whose id is not in ``keep_ids``; return how many went."""
        with self.session() as session:
            present = set(session.scalars(select(MirrorFrame.id)).all())
            gone = sorted(present - keep_ids)
            for start in range(0, len(gone), UPSERT_CHUNK):
                chunk = gone[start : start + UPSERT_CHUNK]
                session.execute(delete(MirrorFrame).where(MirrorFrame.id.in_(chunk)))
        return len(gone)

    def mirror_size(self) -> int:
        with self.session() as session:
            return int(session.scalar(select(func.count()).select_from(MirrorFrame)) or 0)

    def load_mirror(self, key_column: str | None = None) -> pd.DataFrame:
        """Return the mirror as a DataFrame: id, the key columns, quantity, price_cents.

        Args:
            key_column: load only this key column (sku, gtin14 or composite)
                instead of all three, which saves time and memory at scale.
        """
        keys = MIRROR_KEY_COLUMNS if key_column is None else (key_column,)
        dtypes = {
            name: dtype
            for name, dtype in MIRROR_DTYPES.items()
            if name not in MIRROR_KEY_COLUMNS or name in keys
        }
        query = f"SELECT {', '.join(dtypes)} FROM mirror_frames"  # noqa: S608 - constant names
        with self.engine.connect() as connection:
            if self.engine.dialect.name != "sqlite":
                frame = pd.read_sql_query(text(query), connection)
                return frame.astype(dtypes)
            driver_connection = connection.connection.driver_connection
            try:
                return _load_sqlite_mirror(driver_connection, dtypes)  # type: ignore[arg-type]
            except sqlite3.OperationalError as error:
                if "json_group_array" not in str(error):
                    raise
            # SQLite before 3.38 may lack the JSON functions. The sqlite3
            # connection itself still skips SQLAlchemy's per-row processing.
            frame = pd.read_sql_query(query, driver_connection)
        return frame.astype(dtypes)

    # Runs

    def start_run(self, job: str, *, dry_run: bool) -> int:
        """Record a run as started and return its id."""
        with self.session() as session:
            run = Run(job=job, started_at=utcnow(), outcome="running", dry_run=dry_run)
            session.add(run)
            session.flush()
            return run.id

    def finish_run(
        self, run_id: int, *, outcome: str, counts: dict[str, Any], error: str | None = None
    ) -> None:
        """Record a run's end, outcome, counts and error message."""
        with self.session() as session:
            session.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(
                    finished_at=utcnow(),
                    outcome=outcome,
                    counts=json.dumps(counts, sort_keys=True, default=str),
                    error=error,
                )
            )

    def recent_runs(self, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Return the newest runs, newest first, as plain dicts."""
        statement = select(Run).order_by(Run.id.desc()).limit(limit)
        if job:
            statement = statement.where(Run.job == job)
        with self.session() as session:
            runs = session.scalars(statement).all()
        return [
            {
                "id": run.id,
                "job": run.job,
                "started_at": _aware(run.started_at),
                "finished_at": _aware(run.finished_at),
                "outcome": run.outcome,
                "dry_run": run.dry_run,
                "counts": json.loads(run.counts or "{}"),
                "error": run.error,
            }
            for run in runs
        ]

    def mark_interrupted_runs(self, job: str) -> int:
        """Mark the job's runs still 'running' as interrupted; return how many."""
        with self.session() as session:
            result = session.execute(
                update(Run)
                .where(Run.job == job, Run.outcome == "running")
                .values(outcome="interrupted", finished_at=utcnow())
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # Journal

    def plan_batches(
        self, run_id: int, job: str, batches: Sequence[tuple[str, list[dict[str, Any]]]]
    ) -> None:
        """Record the cycle's batches as planned, before any is posted."""
        with self.session() as session:
            for key, updates in batches:
                session.add(
                    Batch(
                        run_id=run_id,
                        job=job,
                        idempotency_key=key,
                        status=BATCH_PLANNED,
                        payload=json.dumps(updates),
                    )
                )

    def set_batch_status(self, key: str, status: str, result: dict[str, Any] | None = None) -> None:
        """Move one batch to ``status``, storing a result summary if given.

        Raises:
            StateError: when the journal does not hold exactly one batch with ``key``.
        """
        with self.engine.begin() as connection:
            self._set_statuses(connection, [key], status, result)

    def set_batches_status(self, keys: Sequence[str], status: str) -> None:
        """Move several batches to ``status`` in one statement.

        Raises:
            StateError: when some key matches no journal row.
        """
        if keys:
            with self.engine.begin() as connection:
                self._set_statuses(connection, list(keys), status, None)

    @staticmethod
    def _set_statuses(
        connection: Connection, keys: list[str], status: str, result: dict[str, Any] | None
    ) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
        if result is not None:
            values["result"] = json.dumps(result, sort_keys=True)
        changed = connection.execute(
            update(Batch).where(Batch.idempotency_key.in_(keys)).values(values)
        ).rowcount
        if changed != len(keys):
            shown = keys[0] if len(keys) == 1 else f"{len(keys)} keys starting {keys[0]}"
            raise StateError(f"batch {shown} matched {changed} journal rows, expected {len(keys)}")

    def open_batches(self, job: str) -> list[OpenBatch]:
        """Return the job's batches that were planned or posted but never confirmed."""
        with self.session() as session:
            batches = session.scalars(
                select(Batch)
                .where(Batch.job == job, Batch.status.in_(OPEN_BATCH_STATES))
                .order_by(Batch.id)
            ).all()
        return [
            OpenBatch(
                id=batch.id,
                run_id=batch.run_id,
                idempotency_key=batch.idempotency_key,
                status=batch.status,
                frame_ids=[update["frame_id"] for update in json.loads(batch.payload)],
            )
            for batch in batches
        ]

    def batch_counts(self, job: str | None = None) -> dict[str, int]:
        """Return how many journal batches are in each status."""
        statement = select(Batch.status, func.count()).group_by(Batch.status)
        if job:
            statement = statement.where(Batch.job == job)
        with self.session() as session:
            return {status: int(count) for status, count in session.execute(statement).all()}


def _add_missing_mirror_columns(engine: Engine) -> None:
    """Add mirror columns that a state database made by an earlier version lacks.

    A new key column is empty for the frames already mirrored, so the frames
    watermark is dropped too: the next cycle reads every frame and fills it.
    """
    present = {column["name"] for column in inspect(engine).get_columns("mirror_frames")}
    if "composite" in present:
        return
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE mirror_frames ADD COLUMN composite VARCHAR(255)"))
        connection.execute(
            delete(Bookmark).where(
                Bookmark.scope == GLOBAL_SCOPE, Bookmark.name == FRAMES_WATERMARK
            )
        )
    log.info("state.upgraded added mirror_frames.composite; the next cycle rescans every frame")


def _mirror_table() -> Table:
    return cast(Table, MirrorFrame.__table__)


_SQLITE_UPSERT_NEW_OR_REKEYED = """
INSERT INTO mirror_frames (id, sku, gtin14, composite, quantity, price_cents, currency, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    sku = excluded.sku, gtin14 = excluded.gtin14, composite = excluded.composite,
    quantity = excluded.quantity, price_cents = excluded.price_cents,
    currency = excluded.currency, updated_at = excluded.updated_at
WHERE mirror_frames.sku IS NOT excluded.sku
    OR mirror_frames.gtin14 IS NOT excluded.gtin14
    OR mirror_frames.composite IS NOT excluded.composite
"""
_SQLITE_UPDATE_VALUES = """
UPDATE mirror_frames SET quantity = ?1, price_cents = ?2, currency = ?3, updated_at = ?4
WHERE id = ?5
    AND NOT (quantity IS ?1 AND price_cents IS ?2 AND currency IS ?3 AND updated_at IS ?4)
"""

_SQLITE_APPLY_ACCEPTED = """
UPDATE mirror_frames
SET quantity = coalesce(?, quantity), price_cents = coalesce(?, price_cents), updated_at = ?
WHERE id = ?
"""


def _sqlite_datetime_processor(engine: Engine) -> Callable[[datetime], Any]:
    """Return SQLAlchemy's own conversion of a ``DateTime`` value for SQLite.

    The raw upsert stores ``updated_at`` in exactly the text that the ORM
    path and ``apply_accepted`` store, so the two paths never disagree.
    """
    processor = DateTime(timezone=True).dialect_impl(engine.dialect).bind_processor(engine.dialect)
    if processor is None:
        return lambda value: value
    return cast(Callable[[datetime], Any], processor)


def _load_sqlite_mirror(connection: sqlite3.Connection, dtypes: dict[str, str]) -> pd.DataFrame:
    """Read the mirror from SQLite one column at a time, as JSON arrays.

    ``json_group_array`` builds each column in C and ``json.loads`` decodes it
    in C, where fetching rows makes a Python tuple per row: at 1,000,000 frames
    this takes about half the time of ``pd.read_sql_query``. Rows are read in
    rowid ranges, so no JSON text grows beyond ``MIRROR_READ_CHUNK`` rows.

    Raises:
        sqlite3.OperationalError: when this SQLite lacks ``json_group_array``.
    """
    names = list(dtypes)
    columns: dict[str, list[Any]] = {name: [] for name in names}
    aggregates = ", ".join(f"json_group_array({name})" for name in names)
    # All aggregates of one SELECT see the rows in the same order.
    query = f"SELECT {aggregates} FROM mirror_frames WHERE rowid >= ? AND rowid < ?"  # noqa: S608 - constant names
    first, last = connection.execute("SELECT min(rowid), max(rowid) FROM mirror_frames").fetchone()
    if first is not None:
        for start in range(first, last + 1, MIRROR_READ_CHUNK):
            texts = connection.execute(query, (start, start + MIRROR_READ_CHUNK)).fetchone()
            for name, text in zip(names, texts, strict=True):
                columns[name].extend(json.loads(text))
    return pd.DataFrame(
        {name: _extension_array(values, dtypes[name]) for name, values in columns.items()}
    )


def _extension_array(values: list[Any], dtype: str) -> pd.api.extensions.ExtensionArray:
    """Convert a list of str or int (None for null) to a "string" or "Int64" array via Arrow.

    Arrow converts a million values about four times faster than ``pd.array``.
    """
    if dtype == "string":
        return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()))
    integers = pa.array(values, type=pa.int64())
    return pd.arrays.IntegerArray(np.asarray(integers.fill_null(0)), np.asarray(integers.is_null()))


def _row_dict(row: MirrorRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "sku": row.sku,
        "gtin14": row.gtin14,
        "composite": row.composite,
        "quantity": row.quantity,
        "price_cents": row.price_cents,
        "currency": row.currency,
        "updated_at": row.updated_at,
    }


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


__all__ = [
    "BATCH_CONFIRMED",
    "BATCH_FAILED",
    "BATCH_PLANNED",
    "BATCH_POSTED",
    "BATCH_SUPERSEDED",
    "MirrorRow",
    "OpenBatch",
    "StateStore",
]
