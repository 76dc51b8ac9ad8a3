"""Supplier feed adapter, selected with ``adapter = "feed"``.

Reads a supplier's stock feed from an HTTP(S) URL or an SFTP server, in CSV/TSV,
JSON or XML (with a ``google_merchant`` preset for Google Merchant Center RSS
feeds), plain, gzip-compressed or zipped.

A read goes through three layers:

1. ``adapters.feed_transport`` downloads the body with auth, size limits,
   timeouts and retries. A conditional request (ETag, Last-Modified, or the
   SFTP file's mtime and size) that finds the feed unchanged returns the
   previous result from ``<state_dir>/feeds/`` without downloading or parsing.
   A body whose SHA-256 equals the last one is not parsed again either.
2. ``adapters.feed_formats`` turns the unpacked body into text cells.
3. ``adapters.normalise`` (CSV: the ``csv`` adapter) parses keys, quantities and
   prices, and reports rejected records.

A feed that is cut off raises ``SourceError``: a short body, a truncated gzip
stream, unclosed XML or JSON, or a CSV whose last row is incomplete. Nothing
from it is used, so the engine skips the cycle instead of applying half a feed.

Quantities of JSON and XML records come from ``columns.quantity`` where the
record has one, otherwise from ``columns.availability`` through
``availability_quantities``. Availability words are compared ignoring case,
surrounding spaces and the difference between ``_`` and a space, so
``in_stock`` and ``In Stock`` both match ``in stock``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from adapters.base import Rejection, SourceResult, StockSource
from adapters.feed_formats import (
    FeedRecords,
    check_csv_complete,
    read_json_records,
    read_xml_records,
)
from adapters.feed_transport import (
    Download,
    FeedCache,
    HttpAuthOptions,
    HttpFetcher,
    SftpFetcher,
    SftpOptions,
    TransferOptions,
    cache_name,
    file_sha256,
    redact_url,
    unpack,
)
from adapters.normalise import ColumnMap, ValueOptions, normalise_cells
from adapters.stock_file import Engine, StockFileOptions, StockFileSource
from sync.errors import SourceError
from sync.keys import STRING_DTYPE

log = logging.getLogger("eyekiosk_sync.adapters.feed")

GOOGLE_NAMESPACE = "http://base.google.com/ns/1.0"
GOOGLE_RECORD_PATH = "rss/channel/item"
DEFAULT_AVAILABILITY_QUANTITIES = {
    "in stock": 1,
    "out of stock": 0,
    "preorder": 0,
    "backorder": 0,
}
# Name of the quantity cell built from the quantity and availability fields.
QUANTITY_CELL = "<quantity>"
_CURRENCY_CODE = re.compile(r"^\s*([A-Z]{3})\b|\b([A-Z]{3})\s*$")

FeedFormat = Literal["csv", "json", "xml", "google_merchant"]


def availability_word(text: str) -> str:
    """Return an availability value in the form that ``availability_quantities`` is keyed by."""
    return " ".join(text.replace("_", " ").split()).casefold()


class FeedColumns(ColumnMap):
    """Fields of each record that hold the key, quantity, price and availability.

    For CSV these are header names; for JSON dotted paths inside a record; for
    XML element paths relative to the record (see ``adapters.feed_formats``).

    Attributes:
        quantity: the stock count; required for CSV. For JSON and XML it may be
            left out when ``availability`` is set, and a record without it
            takes its quantity from availability.
        availability: availability text such as ``in stock`` (JSON and XML only).
    """

    quantity: str | None = None  # type: ignore[assignment]
    availability: str | None = None


class SupplierFeedOptions(ValueOptions, TransferOptions):
    """Options of the ``feed`` adapter.

    The value options (decimal, key_type, empty_quantity and the others) are
    those of ``adapters.normalise.ValueOptions``, and the download limits
    (max_bytes, timeouts, attempts, compression) those of
    ``adapters.feed_transport.TransferOptions``.

    Attributes:
        url: the feed's http or https URL. Put no secret in it; use ``auth``.
        sftp: the SFTP server and file, instead of ``url``.
        auth: HTTP authentication, with the secret in the environment or a file.
        headers: extra HTTP request headers that are not secret.
        format: "csv" (also TSV), "json", "xml" or "google_merchant".
        file_name: name of the feed in rejection locations. Defaults to the last
            part of the URL or remote path, without ``.gz`` or ``.zip``.
        columns: the fields that hold key, quantity, price and availability.
            "google_merchant" fills in ``g:id`` (or ``g:gtin``), ``g:quantity``,
            ``g:price`` and ``g:availability`` when the table is left out.
        delimiter: CSV cell delimiter; ``"\\t"`` reads TSV.
        encoding: CSV text encoding (JSON is UTF-8; XML declares its own).
        header_row: 1-based line number of the CSV header.
        engine: CSV parser, as in the ``csv`` adapter.
        records_path: JSON: dotted path to the list of records, e.g. ``data.items``.
        record_path: XML: element path from the root to each record.
        namespaces: XML: prefix to namespace URI, used by record_path and columns.
        key_field: google_merchant: "id" reads ``g:id`` as an SKU, "gtin" reads
            ``g:gtin`` as a barcode.
        currency: reject records whose price names another three-letter currency
            code than this one, e.g. "USD". Prices without a code are accepted.
        availability_quantities: quantity for each availability word.
    """

    url: str | None = None
    sftp: SftpOptions | None = None
    auth: HttpAuthOptions | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    format: FeedFormat
    file_name: str | None = None
    columns: FeedColumns
    delimiter: str = ","
    encoding: str = "utf-8"
    header_row: PositiveInt = 1
    engine: Engine = "auto"
    records_path: str = ""
    record_path: str | None = None
    namespaces: dict[str, str] = Field(default_factory=dict)
    key_field: Literal["id", "gtin"] = "id"
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    availability_quantities: dict[str, NonNegativeInt] = Field(
        default_factory=lambda: dict(DEFAULT_AVAILABILITY_QUANTITIES)
    )

    @model_validator(mode="before")
    @classmethod
    def _google_merchant_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("format") != "google_merchant":
            return data
        data = dict(data)
        gtin = data.get("key_field") == "gtin"
        data.setdefault(
            "columns",
            {
                "key": "g:gtin" if gtin else "g:id",
                "quantity": "g:quantity",
                "price": "g:price",
                "availability": "g:availability",
            },
        )
        if gtin:
            data.setdefault("key_type", "barcode")
        data.setdefault("record_path", GOOGLE_RECORD_PATH)
        data["namespaces"] = {"g": GOOGLE_NAMESPACE, **data.get("namespaces", {})}
        return data

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(
                "url must start with http:// or https://. For SFTP, use an [sftp] table"
            )
        return url

    @field_validator("availability_quantities")
    @classmethod
    def _normalise_words(cls, quantities: dict[str, int]) -> dict[str, int]:
        return {availability_word(word): quantity for word, quantity in quantities.items()}

    @model_validator(mode="after")
    def _check_feed(self) -> SupplierFeedOptions:
        if (self.url is None) == (self.sftp is None):
            raise ValueError("set either url or an [sftp] table (exactly one of them)")
        if self.auth is not None and self.url is None:
            raise ValueError("auth applies to url only. Put SFTP logins in the [sftp] table")
        if self.empty_quantity == "availability" and self.format != "csv":
            raise ValueError(
                'empty_quantity = "availability" is for CSV feeds; JSON and XML feeds read '
                "columns.availability through availability_quantities"
            )
        if self.format == "csv":
            if self.columns.quantity is None:
                raise ValueError("a CSV feed needs columns.quantity")
            if self.columns.availability is not None:
                raise ValueError(
                    'for CSV feeds, use empty_quantity = "availability" and an '
                    "[availability] table instead of columns.availability"
                )
            # Validate the CSV options now, so a mistake shows when the config loads.
            self.csv_options(Path("feed.csv"))
        elif self.columns.quantity is None and self.columns.availability is None:
            raise ValueError("set columns.quantity, columns.availability or both")
        if self.format in ("xml", "google_merchant") and not self.record_path:
            raise ValueError('an XML feed needs record_path, e.g. "rss/channel/item"')
        return self

    def csv_options(self, path: Path) -> StockFileOptions:
        """Return the ``csv`` adapter's options for reading the unpacked feed at ``path``."""
        # Only shared fields: the csv adapter's own extras keep their defaults.
        fields = (set(StockFileOptions.model_fields) & set(type(self).model_fields)) - {"path"}
        values = {name: getattr(self, name) for name in fields}
        values["columns"] = ColumnMap(
            key=self.columns.key, quantity=self.columns.quantity or "", price=self.columns.price
        )
        return StockFileOptions.model_validate({**values, "path": path})

    def value_options(self) -> ValueOptions:
        """Return the value options for the cells of a JSON or XML feed."""
        fields = set(ValueOptions.model_fields) - {"columns"}
        values = {name: getattr(self, name) for name in fields}
        values["columns"] = ColumnMap(
            key=self.columns.key, quantity=QUANTITY_CELL, price=self.columns.price
        )
        return ValueOptions.model_validate(values)


class SupplierFeedSource(StockSource[SupplierFeedOptions]):
    """Stock rows from a supplier's feed over HTTP(S) or SFTP (alias ``feed``)."""

    options_model = SupplierFeedOptions
    #: Called with the delay in seconds between download tries; tests replace it.
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def describe(self) -> str:
        """Describe the source as ``feed <url or sftp://user@host:port/path> (<format>)``."""
        return f"feed {self._target()} ({self.options.format})"

    def read(self) -> SourceResult:
        """Download the feed unless unchanged, and read its records.

        Returns:
            One row per key and the rejected records, or the previous result
            when the server reports the feed unchanged.

        Raises:
            SourceError: when the feed cannot be downloaded, is too large, cut
                off, not in its format, or lacks a configured field.
        """
        cache = FeedCache(
            self.context.state_dir / "feeds",
            cache_name(self.context.job, self._target()),
            fingerprint=hashlib.sha256(self.options.model_dump_json().encode()).hexdigest(),
        )
        cache.folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".download-", dir=cache.folder))
        try:
            return self._read_into(cache, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _read_into(self, cache: FeedCache, work: Path) -> SourceResult:
        # Fetch, conditionally when a cached result exists.
        body = work / "body"
        validators = cache.validators()
        download = self._fetch(body, validators)
        if download.not_modified:
            cached = cache.load_result() if validators else None
            if cached is not None:
                return self._unchanged(cached, reason="not_modified")
            log.warning("feed.cache_missing source=%s: fetching the whole feed", self.describe())
            download = self._fetch(body, {})
        if download.path is None:
            raise SourceError(
                "the server responded with 304 Not Modified to a request without If-None-Match or "
                "If-Modified-Since, so there is no feed to read and no earlier result to "
                "reuse. Check the url, and ask the supplier to send the feed with 200 OK.",
                source=self.describe(),
            )

        # Skip parsing when the body is byte for byte the last one.
        digest = file_sha256(download.path)
        cached = cache.load_result(sha256=digest)
        if cached is not None:
            cache.save(cached, validators=download.validators, sha256=digest)
            return self._unchanged(cached, reason="same_body")

        # Unpack and parse.
        plain = unpack(
            download.path,
            work / self._file_name(),
            transfer=self.options,
            content_encoding=download.content_encoding,
            source=self.describe(),
        )
        if plain != work / self._file_name():
            plain = plain.rename(work / self._file_name())
        result = self._parse(plain)

        cache.save(result, validators=download.validators, sha256=digest)
        log.info(
            "feed.read source=%s total=%d rows=%d rejected=%d",
            self.describe(),
            result.total_rows,
            len(result.rows),
            len(result.rejections),
        )
        return result

    def _fetch(self, destination: Path, validators: dict[str, Any]) -> Download:
        if self.options.sftp is not None:
            sftp = SftpFetcher(
                self.options.sftp,
                transfer=self.options,
                config_dir=self.context.config_dir,
                source=self.describe(),
                sleep=self.sleep,
            )
            return sftp.fetch(destination, validators)
        assert self.options.url is not None
        http = HttpFetcher(
            self.options.url,
            transfer=self.options,
            auth=self.options.auth,
            headers=self.options.headers,
            config_dir=self.context.config_dir,
            source=self.describe(),
            sleep=self.sleep,
        )
        return http.fetch(destination, validators)

    def _unchanged(self, cached: SourceResult, *, reason: str) -> SourceResult:
        log.info(
            "feed.unchanged source=%s reason=%s rows=%d rejected=%d: using the last result",
            self.describe(),
            reason,
            len(cached.rows),
            len(cached.rejections),
        )
        cached.description = self.describe()
        return cached

    # Parsing ---------------------------------------------------------------

    def _parse(self, plain: Path) -> SourceResult:
        if self.options.format == "csv":
            return self._parse_csv(plain)
        fields = self._fields()
        if self.options.format == "json":
            records = read_json_records(
                plain,
                records_path=self.options.records_path,
                fields=fields,
                name=plain.name,
                source=self.describe(),
            )
        else:
            records = read_xml_records(
                plain,
                record_path=self.options.record_path or "",
                namespaces=self.options.namespaces,
                fields=fields,
                name=plain.name,
                source=self.describe(),
            )
        rows, rejections = self._normalise(records)
        return SourceResult(
            rows=rows,
            rejections=rejections,
            description=self.describe(),
            total_rows=len(records.cells),
        )

    def _parse_csv(self, plain: Path) -> SourceResult:
        options = self.options
        check_csv_complete(
            plain,
            delimiter=options.delimiter,
            encoding=options.encoding,
            header_row=options.header_row,
            source=self.describe(),
        )
        reader = StockFileSource(options.csv_options(plain), context=self.context)
        try:
            result = reader.read()
        except SourceError as error:
            # Name the feed, not the temporary file the csv adapter read.
            message = str(error).removeprefix(f"{reader.describe()}: ")
            raise SourceError(message, source=self.describe()) from error
        result.description = self.describe()
        return result

    def _fields(self) -> list[str]:
        columns = self.options.columns
        fields = [*columns.key_columns(), columns.quantity, columns.price, columns.availability]
        return list(dict.fromkeys(field for field in fields if field is not None))

    def _normalise(self, records: FeedRecords) -> tuple[pd.DataFrame, list[Rejection]]:
        """Build the quantity cell, check currencies, and parse the remaining records."""
        cells = records.cells
        quantity, early = self._quantity_cells(cells)
        for position, reason in self._currency_reasons(cells).items():
            early.setdefault(position, []).append(reason)

        # Records rejected here skip the value checks; positions map back to the feed.
        keep = np.ones(len(cells), dtype=bool)
        keep[list(early)] = False
        positions = np.flatnonzero(keep)
        kept = cells.iloc[positions].reset_index(drop=True)
        kept[QUANTITY_CELL] = quantity.iloc[positions].reset_index(drop=True)
        keys = self._raw_keys(cells)

        # Feed position of each rejection's location, for merging the two lists in order.
        located: dict[str, int] = {}

        def locate(subset: Sequence[int]) -> list[str]:
            found = []
            for p in subset:
                location = self._location(records, int(positions[p]), keys)
                located[location] = int(positions[p])
                found.append(location)
            return found

        rows, rejections = normalise_cells(
            kept, self.options.value_options(), locate=locate, adapter="feed"
        )
        for position, reasons in early.items():
            location = self._location(records, position, keys)
            located[location] = position
            rejections.append(
                Rejection(location=location, reason=" ".join(reasons), key=keys[position] or None)
            )
        rejections.sort(key=lambda rejection: located[rejection.location])
        return rows, rejections

    def _quantity_cells(self, cells: pd.DataFrame) -> tuple[pd.Series, dict[int, list[str]]]:
        """Return the quantity text per record and the records whose availability is unknown."""
        columns = self.options.columns
        empty = pd.Series("", index=cells.index, dtype=STRING_DTYPE)
        quantity = cells[columns.quantity] if columns.quantity else empty
        if columns.availability is None:
            return quantity, {}

        raw = cells[columns.availability]
        words = raw.map(availability_word, na_action="ignore")
        mapping = self.options.availability_quantities
        mapped = words.map(lambda word: str(mapping[word]) if word in mapping else "")
        missing = quantity.str.strip().eq("")
        filled = quantity.where(~missing, mapped.astype(STRING_DTYPE))

        unknown = missing & words.ne("") & ~words.isin(list(mapping))
        known = ", ".join(f"'{word}'" for word in mapping)
        early = {
            int(position): [
                f"availability '{raw.iloc[position]}' is not in availability_quantities "
                f"({known}). Add it with the quantity to send."
            ]
            for position in np.flatnonzero(unknown.to_numpy(dtype=bool))
        }
        return filled, early

    def _currency_reasons(self, cells: pd.DataFrame) -> dict[int, str]:
        expected = self.options.currency
        price = self.options.columns.price
        if expected is None or price is None:
            return {}
        codes = cells[price].str.extract(_CURRENCY_CODE)
        code = codes[0].fillna(codes[1])
        other = code.notna() & code.ne(expected)
        return {
            int(position): (
                f"price '{cells[price].iloc[position]}' is in {code.iloc[position]}, but "
                f"currency is {expected}. Ask the supplier for {expected} prices or change "
                f"currency."
            )
            for position in np.flatnonzero(other.to_numpy(dtype=bool))
        }

    def _raw_keys(self, cells: pd.DataFrame) -> list[str]:
        names = self.options.columns.key_columns()
        text = cells[names[0]]
        for name in names[1:]:
            text = text + self.options.key_separator + cells[name]
        return [str(value) for value in text.fillna("")]

    def _location(self, records: FeedRecords, position: int, keys: list[str]) -> str:
        if self.options.format == "json":
            return f"{records.label}[{position}]"
        key = keys[position]
        field = self.options.columns.key_columns()[0]
        return (
            f"{records.label} {position + 1} ({field}={key})"
            if key
            else (f"{records.label} {position + 1}")
        )

    # Names -------------------------------------------------------------------

    def _target(self) -> str:
        sftp = self.options.sftp
        if sftp is not None:
            return f"sftp://{sftp.username}@{sftp.host}:{sftp.port}{_absolute(sftp.path)}"
        assert self.options.url is not None
        auth = self.options.auth
        extra = frozenset({auth.name}) if auth is not None and auth.name else frozenset()
        return redact_url(self.options.url, extra)

    def _file_name(self) -> str:
        if self.options.file_name:
            return self.options.file_name
        if self.options.sftp is not None:
            name = PurePosixPath(self.options.sftp.path).name
        else:
            name = PurePosixPath(urlsplit(self.options.url or "").path).name
        name = re.sub(r"\.(gz|zip)$", "", name)
        if self.options.zip_member:
            name = PurePosixPath(self.options.zip_member).name
        if not name or name.startswith("."):
            extension = "xml" if self.options.format == "google_merchant" else self.options.format
            name = f"feed.{extension}"
        return name


def _absolute(path: str) -> str:
    return path if path.startswith("/") else f"/{path}"


__all__ = [
    "DEFAULT_AVAILABILITY_QUANTITIES",
    "FeedColumns",
    "SupplierFeedOptions",
    "SupplierFeedSource",
    "availability_word",
]
