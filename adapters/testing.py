"""Contract tests that an adapter author runs against their own adapter.

The suites check what ``adapters.base`` promises to the engine, so that every
adapter, shipped or installed from a plugin, behaves the same way. An author
writes a *case*, which builds the adapter over given rows, and a test class
that inherits the suite and returns the case from a fixture::

    from pathlib import Path

    import pytest

    from adapters.testing import StockRow, StockSourceCase, StockSourceContract
    from my_plugin import JsonLinesSource

    class JsonLinesCase(StockSourceCase):
        def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> JsonLinesSource:
            path = tmp_path / "stock.jsonl"
            path.write_text("".join(json.dumps({...}) + "\\n" for row in rows))
            return build_source(JsonLinesSource, {"path": str(path)}, tmp_path)

    class TestJsonLines(StockSourceContract):
        @pytest.fixture
        def stock_case(self) -> StockSourceCase:
            return JsonLinesCase()

To run one suite over several adapters, make ``stock_case`` a parametrized
fixture (``@pytest.fixture(params=[...], ids=[...])``). ``OrderSinkCase`` and
``OrderSinkContract`` do the same for order sinks.

Every test runs with the environment variable ``EYEKIOSK_CONTRACT_SECRET``
set to ``CONTRACT_SECRET``. A case whose adapter takes a secret (a database
password, an API token) passes it from there, for example with
``password_env = "EYEKIOSK_CONTRACT_SECRET"``, and the suites check that the
secret appears in no description, log record or rejection.

The module imports pytest, so only test code imports it.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import pandas as pd
import pytest

from adapters.base import (
    KEY,
    NORMALISED_COLUMNS,
    PRICE_CENTS,
    QUANTITY,
    DeliveryResult,
    OrderDelivery,
    OrderSink,
    SourceContext,
    SourceResult,
    StockSource,
)

#: The secret that the suites put in the environment variable ``CONTRACT_SECRET_ENV``
#: for every case. A case whose adapter takes a password or token passes this one.
CONTRACT_SECRET = "contract-secret-5f2b9e"  # noqa: S105 - a fixed test value
CONTRACT_SECRET_ENV = "EYEKIOSK_CONTRACT_SECRET"  # noqa: S105 - a variable name

#: Values of the sample orders that are patient data; no log line may contain them.
PATIENT_MARKERS = ("Ada Contractpatient", "ada.contractpatient@example.test", "-3.75", "+1.25")


@dataclass(frozen=True, slots=True)
class StockRow:
    """One row that a case writes into its source, and that the adapter should return.

    Attributes:
        key: the key as the source holds it, and as the adapter should return it.
        quantity: a count of 0 or more.
        price_cents: the price in cents, or None for a row without a price.
    """

    key: str
    quantity: int
    price_cents: int | None


#: Rows that every stock source must read back unchanged: leading zeros, a
#: missing price, a zero quantity, and a key with spaces inside it.
DEFAULT_STOCK_ROWS = (
    StockRow("FR-00001", 2, 28899),
    StockRow("00042", 0, 4500),
    StockRow("FR 00003", 7, None),
    StockRow("fr-00004", 1, 100),
)


def build_source(
    adapter: type[StockSource[Any]], options: Mapping[str, Any], tmp_path: Path
) -> StockSource[Any]:
    """Build a stock source from raw options, as the engine does from a TOML table."""
    return adapter.from_mapping(options, context=contract_context(tmp_path))


def build_sink(
    adapter: type[OrderSink[Any]], options: Mapping[str, Any], tmp_path: Path
) -> OrderSink[Any]:
    """Build an order sink from raw options, as the engine does from a TOML table."""
    return adapter.from_mapping(options, context=contract_context(tmp_path))


def contract_context(tmp_path: Path) -> SourceContext:
    """Return the context the suites build adapters with: config and state under ``tmp_path``."""
    state_dir = tmp_path / "state"
    state_dir.mkdir(exist_ok=True)
    return SourceContext(job="contract", config_dir=tmp_path, state_dir=state_dir)


# Stock sources -------------------------------------------------------------


class StockSourceCase(ABC):
    """Builds one stock-source adapter for ``StockSourceContract``.

    Attributes:
        secret: the secret that must not leak. The suite sets it in the
            environment variable ``CONTRACT_SECRET_ENV``. A case whose adapter
            takes a password passes that variable's name (``password_env``) or
            this value in its options.
        secret_env: further environment variables set while the adapter is built and read.
    """

    secret: ClassVar[str] = CONTRACT_SECRET
    secret_env: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @abstractmethod
    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        """Write ``rows`` into a new source under ``tmp_path`` and return an adapter over it."""

    def make_empty_source(self, tmp_path: Path) -> StockSource[Any]:
        """Return an adapter over a source with no rows; by default ``make_source`` with none."""
        return self.make_source(tmp_path, [])

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any] | None:
        """Return an adapter over ``rows`` plus at least one row it must reject.

        None, the default, skips the rejection test, for sources whose format
        cannot hold an invalid row.
        """
        return None

    def sample_rows(self) -> Sequence[StockRow]:
        """Return the rows the suite reads back; override when keys must be barcodes."""
        return DEFAULT_STOCK_ROWS


class StockSourceContract:
    """The contract of ``adapters.base.StockSource``; inherit it and provide ``stock_case``."""

    @pytest.fixture
    def stock_case(self) -> StockSourceCase:
        """Return the case under test; test classes override this fixture."""
        raise NotImplementedError("override the stock_case fixture to return a StockSourceCase")

    @pytest.fixture(autouse=True)
    def _secret_env(
        self, stock_case: StockSourceCase, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[None]:
        monkeypatch.setenv(CONTRACT_SECRET_ENV, stock_case.secret)
        for name, value in stock_case.secret_env.items():
            monkeypatch.setenv(name, value)
        yield

    def test_read_normalised_columns(self, stock_case: StockSourceCase, tmp_path: Path) -> None:
        """read() returns exactly key (string), quantity (Int64) and price_cents (Int64)."""
        result = _read(stock_case.make_source(tmp_path, stock_case.sample_rows()))

        assert isinstance(result, SourceResult)
        assert list(result.rows.columns) == list(NORMALISED_COLUMNS)
        assert isinstance(result.rows[KEY].dtype, pd.StringDtype)
        assert result.rows[QUANTITY].dtype == "Int64"
        assert result.rows[PRICE_CENTS].dtype == "Int64"

    def test_read_values_match_rows(self, stock_case: StockSourceCase, tmp_path: Path) -> None:
        """Every written row comes back once with its quantity and price, and nothing else."""
        rows = stock_case.sample_rows()
        result = _read(stock_case.make_source(tmp_path, rows))

        found = {
            str(row[KEY]): (int(row[QUANTITY]), _optional_int(row[PRICE_CENTS]))
            for _, row in result.rows.iterrows()
        }
        assert found == {row.key: (row.quantity, row.price_cents) for row in rows}
        assert result.rejections == []
        assert result.total_rows == len(rows)

    def test_read_keys_unique_quantities_valid(
        self, stock_case: StockSourceCase, tmp_path: Path
    ) -> None:
        """Keys are unique and present, and quantities are present and 0 or more."""
        result = _read(stock_case.make_source(tmp_path, stock_case.sample_rows()))

        assert result.rows[KEY].notna().all()
        assert result.rows[KEY].is_unique
        assert result.rows[QUANTITY].notna().all()
        assert (result.rows[QUANTITY] >= 0).all()

    def test_read_empty_source(self, stock_case: StockSourceCase, tmp_path: Path) -> None:
        """A source without rows gives zero normalised rows and no error."""
        result = _read(stock_case.make_empty_source(tmp_path))

        assert len(result.rows) == 0
        assert list(result.rows.columns) == list(NORMALISED_COLUMNS)
        assert result.rows[QUANTITY].dtype == "Int64"
        assert result.rows[PRICE_CENTS].dtype == "Int64"

    def test_read_bad_rows_rejected(self, stock_case: StockSourceCase, tmp_path: Path) -> None:
        """Invalid rows become rejections with a location and a reason; valid rows still load."""
        rows = stock_case.sample_rows()
        source = stock_case.make_source_with_bad_rows(tmp_path, rows)
        if source is None:
            pytest.skip("the case has no source with invalid rows")
        result = _read(source)

        assert result.rejections
        for rejection in result.rejections:
            assert rejection.location.strip()
            assert rejection.reason.strip()
        assert set(result.rows[KEY]) == {row.key for row in rows}

    def test_describe_hides_secret(
        self, stock_case: StockSourceCase, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The secret is in no description, log record, rejection or result description."""
        secret = stock_case.secret
        caplog.set_level(logging.DEBUG)
        source = stock_case.make_source(tmp_path, stock_case.sample_rows())
        result = _read(source)
        bad = stock_case.make_source_with_bad_rows(
            _folder(tmp_path, "bad"), stock_case.sample_rows()
        )
        rejections = _read(bad).rejections if bad is not None else []

        assert secret not in source.describe()
        assert secret not in result.description
        assert secret not in caplog.text
        for rejection in rejections:
            assert secret not in rejection.location
            assert secret not in rejection.reason

    def test_close_safe(self, stock_case: StockSourceCase, tmp_path: Path) -> None:
        """close() works before read(), after read() and when called twice."""
        unread = stock_case.make_source(_folder(tmp_path, "unread"), stock_case.sample_rows())
        unread.close()
        read = stock_case.make_source(_folder(tmp_path, "read"), stock_case.sample_rows())
        read.read()
        read.close()
        read.close()


def _folder(tmp_path: Path, name: str) -> Path:
    """Return a new folder for a second adapter in the same test."""
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _read(source: StockSource[Any]) -> SourceResult:
    try:
        return source.read()
    finally:
        source.close()


def _optional_int(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


# Order sinks ---------------------------------------------------------------


class OrderSinkCase(ABC):
    """Builds one order sink for ``OrderSinkContract``.

    Attributes:
        secret: the secret that must not leak, as for ``StockSourceCase``.
        secret_env: further environment variables set while the sink is built and used.
    """

    secret: ClassVar[str] = CONTRACT_SECRET
    secret_env: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @abstractmethod
    def make_sink(self, tmp_path: Path) -> OrderSink[Any]:
        """Return a sink whose destination lives under ``tmp_path`` (or on loopback)."""

    def stored_order_ids(self, tmp_path: Path, sink: OrderSink[Any]) -> list[str] | None:
        """Return the order ids the destination holds, one entry per stored copy.

        None, the default, means the case cannot look, and the idempotence test
        then checks only the delivery results.
        """
        return None

    def sample_deliveries(self) -> Sequence[OrderDelivery]:
        """Return the orders the suite delivers: one with a prescription, one without."""
        return sample_deliveries()


def sample_deliveries() -> list[OrderDelivery]:
    """Return two orders shaped like Partner API orders, carrying ``PATIENT_MARKERS``."""
    name, email, sphere, add = PATIENT_MARKERS
    first = {
        "id": "ord_contract_1",
        "status": "pending",
        "created_at": "2026-01-05T10:00:00Z",
        "updated_at": "2026-01-05T10:00:00Z",
        "currency": "USD",
        "total": "289.00",
        "customer": {"name": name, "email": email},
        "items": [{"frame_id": "frm_1", "sku": "FR-00001", "quantity": 1, "unit_price": "289.00"}],
        "has_prescription": True,
        "payment": {"method": "card", "status": "captured", "amount": "289.00"},
    }
    second = {
        **first,
        "id": "ord_contract_2",
        "updated_at": "2026-01-05T10:05:00Z",
        "has_prescription": False,
        "items": [{"frame_id": "frm_2", "sku": "00042", "quantity": 2, "unit_price": "45.00"}],
        "total": "90.00",
    }
    prescription = {
        "id": "rx_contract_1",
        "order_id": "ord_contract_1",
        "created_at": "2026-01-05T10:00:00Z",
        "od": {"sphere": sphere, "cylinder": "-0.50", "axis": 90, "add": add},
        "os": {"sphere": sphere, "cylinder": None, "axis": None, "add": add},
        "pd": {"binocular": "63.5", "od": None, "os": None},
        "segment_height": {"od": None, "os": None},
    }
    return [
        OrderDelivery(order=first, prescriptions=[prescription]),
        OrderDelivery(order=second),
    ]


class OrderSinkContract:
    """The contract of ``adapters.base.OrderSink``; inherit it and provide ``sink_case``."""

    @pytest.fixture
    def sink_case(self) -> OrderSinkCase:
        """Return the case under test; test classes override this fixture."""
        raise NotImplementedError("override the sink_case fixture to return an OrderSinkCase")

    @pytest.fixture(autouse=True)
    def _secret_env(
        self, sink_case: OrderSinkCase, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[None]:
        monkeypatch.setenv(CONTRACT_SECRET_ENV, sink_case.secret)
        for name, value in sink_case.secret_env.items():
            monkeypatch.setenv(name, value)
        yield

    def test_deliver_one_result_per_order(self, sink_case: OrderSinkCase, tmp_path: Path) -> None:
        """deliver() returns one delivered result per order, in the order given."""
        deliveries = sink_case.sample_deliveries()
        sink = sink_case.make_sink(tmp_path)
        try:
            results = sink.deliver(deliveries)
        finally:
            sink.close()

        assert [type(result) for result in results] == [DeliveryResult] * len(deliveries)
        assert [result.order_id for result in results] == [d.order_id for d in deliveries]
        assert [result.delivered for result in results] == [True] * len(deliveries)
        assert [result.error for result in results] == [None] * len(deliveries)

    def test_deliver_twice_idempotent(self, sink_case: OrderSinkCase, tmp_path: Path) -> None:
        """Delivering the same orders again succeeds and stores each order once."""
        deliveries = sink_case.sample_deliveries()
        sink = sink_case.make_sink(tmp_path)
        try:
            sink.deliver(deliveries)
            again = sink.deliver(deliveries)
            stored = sink_case.stored_order_ids(tmp_path, sink)
        finally:
            sink.close()

        assert [result.delivered for result in again] == [True] * len(deliveries)
        if stored is not None:
            assert sorted(stored) == sorted(d.order_id for d in deliveries)

    def test_deliver_logs_no_patient_data(
        self, sink_case: OrderSinkCase, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No log record names the customer or the prescription values."""
        caplog.set_level(logging.DEBUG)
        sink = sink_case.make_sink(tmp_path)
        try:
            results = sink.deliver(sink_case.sample_deliveries())
        finally:
            sink.close()

        for marker in PATIENT_MARKERS:
            assert marker not in caplog.text
            for result in results:
                assert marker not in (result.error or "")

    def test_describe_hides_secret(
        self, sink_case: OrderSinkCase, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The secret is in neither the description nor any log record."""
        caplog.set_level(logging.DEBUG)
        sink = sink_case.make_sink(tmp_path)
        try:
            sink.deliver(sink_case.sample_deliveries())
            description = sink.describe()
        finally:
            sink.close()

        assert sink_case.secret not in description
        assert sink_case.secret not in caplog.text

    def test_close_safe(self, sink_case: OrderSinkCase, tmp_path: Path) -> None:
        """close() works before deliver(), after it and when called twice."""
        sink_case.make_sink(_folder(tmp_path, "unused")).close()
        sink = sink_case.make_sink(_folder(tmp_path, "used"))
        sink.deliver(sink_case.sample_deliveries())
        sink.close()
        sink.close()


__all__ = [
    "CONTRACT_SECRET",
    "CONTRACT_SECRET_ENV",
    "DEFAULT_STOCK_ROWS",
    "PATIENT_MARKERS",
    "OrderSinkCase",
    "OrderSinkContract",
    "StockRow",
    "StockSourceCase",
    "StockSourceContract",
    "build_sink",
    "build_source",
    "contract_context",
    "sample_deliveries",
]
