"""Read a job's stock sources, guard against empty or truncated ones, and combine them.

Each source is read by its adapter. Rejected rows of every source go to one
reject file per job, ``STATE_DIR/rejects/JOB.csv``. The guard compares each
source with its own last good run, so a supplier feed that comes back empty is
caught even when the practice's own export still looks normal.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from adapters.base import (
    KEY,
    PRICE_CENTS,
    QUANTITY,
    Rejection,
    SourceContext,
    SourceResult,
    StockSource,
)
from adapters.registry import load_adapter
from sync.combine import combine_rows
from sync.config import JobSettings, Settings, format_validation_error
from sync.errors import ConfigError, SourceGuardError
from sync.keys import gtin14, normalise_gtin
from sync.report import RunReport, SourceSummary
from sync.state import StateStore

log = logging.getLogger("eyekiosk_sync.sources")

LAST_GOOD_ROWS = "last_good_rows"


@dataclass(slots=True)
class JobSources:
    """The rows a job read: per source, and combined into one row per key."""

    labels: list[str]
    results: list[SourceResult]
    rows: pd.DataFrame


def source_context(settings: Settings, job: JobSettings) -> SourceContext:
    """Return the context adapters of ``job`` run with."""
    config_dir = settings.config_path.parent if settings.config_path else Path.cwd()
    return SourceContext(job=job.name, config_dir=config_dir, state_dir=settings.state.dir)


def build_source(settings: Settings, job: JobSettings, index: int) -> StockSource[Any]:
    """Build the adapter of the job's source number ``index`` (0-based).

    Raises:
        ConfigError: naming the key path of every invalid option.
    """
    source = job.sources[index]
    adapter_class: type[StockSource[Any]] = load_adapter(source.adapter, StockSource)  # type: ignore[type-abstract]
    try:
        return adapter_class.from_mapping(source.options(), context=source_context(settings, job))
    except ValidationError as error:
        problems = format_validation_error(error).splitlines()[1:]
        where = f"jobs.{job.name}.sources[{index}]"
        details = "; ".join(f"{where}.{line.strip()}" for line in problems)
        raise ConfigError(f"invalid {source.adapter} source options: {details}") from None


def read_job_sources(settings: Settings, job: JobSettings, report: RunReport) -> JobSources:
    """Read every source of ``job``, record each in the report and combine the rows.

    Raises:
        ConfigError: when a source's options are invalid.
        SourceError: when a source cannot be read at all.
    """
    labels, results = [], []
    for index, source in enumerate(job.sources):
        adapter = build_source(settings, job, index)
        try:
            result = adapter.read()
        finally:
            adapter.close()
        label = source.label(index)
        result = match_form(result, job, label)
        description = result.description or adapter.describe()
        report.sources.append(
            SourceSummary(
                name=label,
                description=description,
                rows=len(result.rows),
                rejected=len(result.rejections),
            )
        )
        log.info(
            "source.read job=%s source=%s rows=%d rejected=%d",
            job.name,
            description,
            len(result.rows),
            len(result.rejections),
        )
        labels.append(label)
        results.append(result)

    rows = combine_rows([result.rows for result in results], job.combine)
    if len(results) > 1:
        rows = _withhold_rejected_keys(rows, results, job, report)
    report.source_rows = len(rows)
    report.rejected_rows = sum(len(result.rejections) for result in results)
    if report.rejected_rows:
        path = write_rejects(settings.state.dir, job.name, labels, results)
        report.reject_file = str(path)
        log.warning("source.rejected job=%s rows=%d file=%s", job.name, report.rejected_rows, path)
    else:
        # An old reject file would suggest that this run rejected rows too.
        (settings.state.dir / "rejects" / f"{job.name}.csv").unlink(missing_ok=True)
    return JobSources(labels=labels, results=results, rows=rows)


def convert_case(keys: pd.Series, case: str) -> pd.Series:
    """Upper- or lower-case SKUs, as the job's ``sku_case`` sets."""
    return keys.str.upper() if case == "upper" else keys.str.lower()


def match_form(result: SourceResult, job: JobSettings, label: str) -> SourceResult:
    """Bring one source's keys into the form they are matched in, before sources combine.

    Barcodes become GTIN-14 when the job matches on UPC, and SKUs change case
    when it sets ``sku_case``. Keys are unique within a source afterwards: rows
    that now share a key collapse when their values agree and are rejected
    when they differ, so a UPC-A and an EAN-13 row of one frame never sum or
    vanish unreported. Rows whose key is not a valid barcode are rejected.
    """
    rows = result.rows
    if job.match_on == "upc":
        keys = normalise_gtin(rows[KEY]).values.astype("string")
        form = "GTIN-14"
    elif job.match_on == "sku" and job.sku_case != "keep":
        keys = convert_case(rows[KEY], job.sku_case)
        form = f"{job.sku_case} case"
    else:
        return result

    # Rejected keys move to the same form, so a key rejected in one source is
    # withheld from the combination whichever way each source spells it.
    rejections = [_in_form(rejection, job) for rejection in result.rejections]
    invalid = keys.isna()
    for raw in rows.loc[invalid, KEY]:
        rejections.append(
            Rejection(
                location=f"{label} key {raw}",
                reason=f"key {raw!r} is not a valid barcode, so it cannot match on UPC; "
                'set key_type = "barcode" on the source to see its line',
                key=None,
            )
        )
    rows = rows.assign(**{KEY: keys}).loc[~invalid]

    shared = rows[KEY].duplicated(keep=False)
    if shared.any():
        groups = rows.loc[shared].groupby(KEY, sort=False)
        conflicting = {
            str(key)
            for key, group in groups
            if len(group[[QUANTITY, PRICE_CENTS]].drop_duplicates()) > 1
        }
        for key in sorted(conflicting):
            rejections.append(
                Rejection(
                    location=f"{label} key {key}",
                    reason=f"several rows have the key {key} in {form}, with different "
                    "quantities or prices; keep one row per frame",
                    key=key,
                )
            )
        rows = rows.loc[~rows[KEY].isin(list(conflicting))].drop_duplicates(subset=[KEY])
    return SourceResult(
        rows=rows.reset_index(drop=True),
        rejections=rejections,
        description=result.description,
        total_rows=result.total_rows,
    )


def _in_form(rejection: Rejection, job: JobSettings) -> Rejection:
    if rejection.key is None:
        return rejection
    if job.match_on == "upc":
        key = gtin14(rejection.key) or rejection.key
    else:
        key = str(convert_case(pd.Series([rejection.key], dtype="string"), job.sku_case)[0])
    return dataclasses.replace(rejection, key=key)


def _withhold_rejected_keys(
    rows: pd.DataFrame, results: list[SourceResult], job: JobSettings, report: RunReport
) -> pd.DataFrame:
    """Drop keys that any source rejected: their combined values would be partial.

    A sum without the rejected source's share would understate the stock and
    overwrite the quantity already on Eyekiosk, so such keys are left alone.
    """
    rejected = {
        rejection.key
        for result in results
        for rejection in result.rejections
        if rejection.key is not None
    }
    if not rejected:
        return rows
    withheld = rows[KEY].isin(list(rejected))
    report.withheld_keys = int(withheld.sum())
    if report.withheld_keys:
        log.warning(
            "combine.withheld job=%s keys=%d reason=rejected in one source",
            job.name,
            report.withheld_keys,
        )
    return rows.loc[~withheld].reset_index(drop=True)


def check_guard(store: StateStore, job: JobSettings, sources: JobSources, *, force: bool) -> None:
    """Stop the cycle when a source is empty or shrank more than ``max_drop_share``.

    Raises:
        SourceGuardError: naming the source and the row counts, unless ``force``.
    """
    problems = []
    for label, result in zip(sources.labels, sources.results, strict=True):
        last = int(store.get_bookmark(job.name, f"{LAST_GOOD_ROWS}:{label}") or 0)
        rows = len(result.rows)
        if rows == 0:
            problems.append(f"source {label} has no valid rows")
        elif last and rows < last * (1 - job.max_drop_share):
            problems.append(
                f"source {label} has {rows} valid rows, down from {last} in the last good "
                f"run (more than the allowed {job.max_drop_share:.0%} drop)"
            )
    if not problems:
        return
    problem = "; ".join(problems)
    if force:
        log.warning("guard.overridden job=%s reason=%s", job.name, problem)
        return
    raise SourceGuardError(
        f"{problem}; nothing was posted. Check the export, or run "
        f"`eyekiosk-sync sync --job {job.name} --force` if the drop is real",
        source=job.name,
    )


def remember_good_sources(store: StateStore, job: JobSettings, sources: JobSources) -> None:
    """Store each source's row count as the reference for the next guard check."""
    for label, result in zip(sources.labels, sources.results, strict=True):
        store.set_bookmark(job.name, f"{LAST_GOOD_ROWS}:{label}", str(len(result.rows)))


def write_rejects(
    state_dir: Path, job: str, labels: list[str], results: list[SourceResult]
) -> Path:
    """Write the cycle's rejected rows to ``rejects/<job>.csv``, replacing the last file."""
    folder = state_dir / "rejects"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job}.csv"
    temporary = path.with_suffix(".csv.tmp")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "location", "key", "reason"])
        for label, result in zip(labels, results, strict=True):
            for rejection in result.rejections:
                writer.writerow(
                    [label, _cell(rejection.location), _cell(rejection.key or ""), rejection.reason]
                )
    os.replace(temporary, path)
    return path


def _cell(text: str) -> str:
    # A spreadsheet would run a key such as "=HYPERLINK(...)" as a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


__all__ = [
    "JobSources",
    "build_source",
    "check_guard",
    "convert_case",
    "match_form",
    "read_job_sources",
    "remember_good_sources",
    "source_context",
    "write_rejects",
]
