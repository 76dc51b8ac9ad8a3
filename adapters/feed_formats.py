"""Read the records of a downloaded supplier feed: CSV/TSV checks, JSON and XML.

The format layer of the ``feed`` adapter. JSON and XML readers return one text
cell per record and field, in record order, for ``adapters.normalise`` to
parse. CSV is read by the ``csv`` adapter itself, after ``check_csv_complete``.

Field paths:

* JSON: ``records_path`` is a dotted path from the document root to the list
  of records (``data.items``); empty means the document is the list. Field
  names are dotted paths inside a record (``stock.available``). Numbers keep
  their exact text (``105.29`` stays ``105.29``).
* XML: ``record_path`` is the slash-separated element path from the root
  element to each record (``rss/channel/item``). Field names are ElementTree
  paths relative to the record (``g:price``, ``g:shipping/g:price``), with an
  optional final ``@name`` for an attribute (``price/@currency``). Only direct
  paths are followed, so the nested ``g:shipping/g:price`` is never taken for
  the item's ``g:price``. Prefixes resolve through ``namespaces``.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as safe_et
import pandas as pd
from defusedxml import DefusedXmlException

from sync.errors import SourceError
from sync.keys import STRING_DTYPE

log = logging.getLogger("eyekiosk_sync.adapters.feed")

# The tail of a CSV file read to check its last record: enough for any realistic row.
CSV_TAIL_BYTES = 1 << 20


@dataclass(slots=True)
class FeedRecords:
    """The records of a JSON or XML feed as text cells.

    Attributes:
        cells: one column per field path, one row per record in feed order;
            empty text where the record lacks the field.
        label: how a record is named in locations, e.g. ``feed.json data.items``
            or ``feed.xml item``.
    """

    cells: pd.DataFrame
    label: str


# CSV ------------------------------------------------------------------------


def check_csv_complete(
    path: Path, *, delimiter: str, encoding: str, header_row: int, source: str
) -> None:
    """Reject a CSV feed whose end shows that the transfer was cut off.

    The rule: the file must end with a line break, and its last non-blank line,
    when it contains a complete record (an even number of quote characters), must
    have as many cells as the header. A last line that closes a quoted cell
    spanning several lines is not counted, and the CSV parser catches a quote
    that is never closed. A feed cut exactly at a line break passes this check.
    Such a cut is caught only by the Content-Length or SFTP size comparison of
    the download, or by the engine's guard against a sudden drop in rows.

    Raises:
        SourceError: when the file does not end with a line break, or its last
            record has another number of cells than the header.
    """
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb") as handle:
        handle.seek(max(0, size - CSV_TAIL_BYTES))
        tail = handle.read()
    if not tail.endswith((b"\n", b"\r")):
        raise SourceError(
            "the last line ends without a line break, so the feed was cut off in the "
            "middle of a row. Nothing from it was used; the next cycle downloads it again.",
            source=source,
        )

    header = _csv_header(path, delimiter=delimiter, encoding=encoding, header_row=header_row)
    lines = [line for line in tail.decode(encoding, errors="replace").splitlines() if line.strip()]
    if header is None or not lines or (len(lines) == 1 and size <= CSV_TAIL_BYTES):
        return
    last = lines[-1]
    if last.count('"') % 2:
        return
    cells = next(csv.reader([last], delimiter=delimiter, quotechar='"', doublequote=True))
    if len(cells) != len(header):
        raise SourceError(
            f"the last row has {len(cells)} cells but the header has {len(header)}, so the "
            f"feed was cut off or is malformed. Nothing from it was used.",
            source=source,
        )


def _csv_header(path: Path, *, delimiter: str, encoding: str, header_row: int) -> list[str] | None:
    with path.open(encoding=encoding, errors="replace", newline="") as handle:
        for _ in range(header_row - 1):
            handle.readline()
        for record in csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True):
            if record and any(cell.strip() for cell in record):
                return record
    return None


# JSON -----------------------------------------------------------------------


def read_json_records(
    path: Path, *, records_path: str, fields: Sequence[str], name: str, source: str
) -> FeedRecords:
    """Read the records at ``records_path`` and the text of each field.

    Raises:
        SourceError: when the file is not complete, valid JSON, or the records
            path does not lead to a list of objects.
    """
    try:
        with path.open("rb") as handle:
            # Numbers keep their text, so 105.29 is not rounded through a float.
            document = json.load(handle, parse_float=str, parse_int=str)
    except json.JSONDecodeError as error:
        raise SourceError(
            f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno}). "
            f"A feed cut off in transfer looks like this; nothing from it was used.",
            source=source,
        ) from error
    except UnicodeDecodeError as error:
        raise SourceError(f"is not UTF-8 JSON: {error}", source=source) from error
    except RecursionError as error:
        raise _too_deep(source) from error

    records = _follow(document, records_path, source)
    columns: dict[str, list[str]] = {field: [] for field in fields}
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise SourceError(
                f"record {index} at {records_path or 'the root'} is a "
                f"{type(record).__name__}, not an object. Check records_path.",
                source=source,
            )
        for field in fields:
            try:
                columns[field].append(_json_text(_lookup(record, field)))
            except RecursionError as error:
                # A field value nested just below the parser's limit can still be too deep to write.
                raise _too_deep(source) from error
    label = f"{name} {records_path or 'records'}"
    return FeedRecords(cells=_frame(columns, len(records)), label=label)


def _too_deep(source: str) -> SourceError:
    return SourceError(
        "is not a readable JSON feed: its arrays or objects are nested deeper than Python's "
        f"recursion limit ({sys.getrecursionlimit()} levels) allows. Stock feeds need only a "
        "few levels; ask the supplier to check the file.",
        source=source,
    )


def _follow(document: Any, records_path: str, source: str) -> list[Any]:
    node = document
    walked: list[str] = []
    for step in [part for part in records_path.split(".") if part]:
        if not isinstance(node, dict) or step not in node:
            keys = ", ".join(repr(key) for key in node) if isinstance(node, dict) else "none"
            where = ".".join(walked) or "the root"
            raise SourceError(
                f"records_path {records_path!r}: {where} has no key {step!r} (keys: {keys})",
                source=source,
            )
        node = node[step]
        walked.append(step)
    if not isinstance(node, list):
        raise SourceError(
            f"records_path {records_path!r} leads to a {type(node).__name__}, not a list of "
            f'records. Point it at the list, e.g. records_path = "data.items".',
            source=source,
        )
    return node


def _lookup(record: dict[str, Any], field: str) -> Any:
    node: Any = record
    for step in field.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# XML ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FieldPath:
    element: str
    attribute: str | None


def read_xml_records(
    path: Path,
    *,
    record_path: str,
    namespaces: dict[str, str],
    fields: Sequence[str],
    name: str,
    source: str,
) -> FeedRecords:
    """Stream the XML file and collect the text of each field of each record element.

    Parsing goes through defusedxml with DTDs forbidden, so entity-expansion
    bombs and external entities are rejected. Each record element is removed
    from its parent once read, so memory stays bounded by one record plus the
    collected cells.

    Raises:
        SourceError: when the XML is cut off, invalid or has a DTD. No element
            matching ``record_path`` gives zero records and a warning.
    """
    record_tags = _clark_path(record_path, namespaces, source)
    parsed = {field: _field_path(field) for field in fields}
    columns: dict[str, list[str]] = {field: [] for field in fields}
    stack: list[ET.Element] = []
    tags: list[str] = []
    count = 0
    try:
        for event, element in safe_et.iterparse(
            str(path), events=("start", "end"), forbid_dtd=True
        ):
            if event == "start":
                stack.append(element)
                tags.append(element.tag)
                continue
            if tags == record_tags:
                for field, field_path in parsed.items():
                    columns[field].append(_xml_text(element, field_path, namespaces))
                count += 1
                # Drop the finished record so a large feed does not pile up in memory.
                if len(stack) > 1:
                    stack[-2].remove(element)
            stack.pop()
            tags.pop()
    except DefusedXmlException as error:
        raise SourceError(
            f"contains a DTD or entity declaration ({type(error).__name__}), which feeds do "
            f"not need and which can expand into huge documents, so it was rejected.",
            source=source,
        ) from error
    except ET.ParseError as error:
        raise SourceError(
            f"is not well-formed XML ({error}). A feed cut off in transfer looks like this; "
            f"nothing from it was used.",
            source=source,
        ) from error
    except UnicodeDecodeError as error:
        raise SourceError(f"is not in its declared encoding: {error}", source=source) from error

    if count == 0:
        # An empty feed is not an error here: the engine's guard judges zero rows.
        log.warning(
            "feed.no_records source=%s record_path=%s: no element matched; check record_path "
            "and namespaces if the feed is not really empty",
            source,
            record_path,
        )
    local_name = record_tags[-1].rsplit("}", 1)[-1]
    return FeedRecords(cells=_frame(columns, count), label=f"{name} {local_name}")


def _clark_path(record_path: str, namespaces: dict[str, str], source: str) -> list[str]:
    """Turn ``rss/channel/g:item`` into ElementTree tags such as ``{uri}item``."""
    steps = [step for step in record_path.strip("/").split("/") if step]
    if not steps:
        raise SourceError("record_path is empty; set it, e.g. rss/channel/item", source=source)
    tags = []
    for step in steps:
        prefix, _, local = step.rpartition(":")
        if prefix:
            if prefix not in namespaces:
                raise SourceError(
                    f"record_path {record_path!r} uses the prefix {prefix!r}, which is not in "
                    f"namespaces",
                    source=source,
                )
            tags.append(f"{{{namespaces[prefix]}}}{local}")
        elif "" in namespaces:
            tags.append(f"{{{namespaces['']}}}{local}")
        else:
            tags.append(local)
    return tags


def _field_path(field: str) -> _FieldPath:
    element, _, attribute = field.partition("@")
    return _FieldPath(element=element.rstrip("/") or ".", attribute=attribute or None)


def _xml_text(record: ET.Element, field: _FieldPath, namespaces: dict[str, str]) -> str:
    found = record.find(field.element, namespaces)
    if found is None:
        return ""
    if field.attribute is not None:
        return found.get(field.attribute, "").strip()
    return "".join(found.itertext()).strip()


def _frame(columns: dict[str, list[str]], count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {field: pd.Series(values, dtype=STRING_DTYPE) for field, values in columns.items()},
        index=pd.RangeIndex(count),
    )


__all__ = [
    "FeedRecords",
    "check_csv_complete",
    "read_json_records",
    "read_xml_records",
]
