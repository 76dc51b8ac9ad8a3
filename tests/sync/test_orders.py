"""Order pulls over real HTTP to the sandbox, into a folder sink, with a real SQLite state."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

import sync.orders
from sync.errors import MissingScopeError
from sync.models import format_timestamp
from sync.order_state import list_orders
from sync.orders import ORDERS_CHECKPOINT, InvalidTransitionError, change_status, read_checkpoint
from sync.sandbox import SandboxServer
from tests.sync.orders_harness import AfterOrdersPage, OrderInstallation, whole_second

LIST_ORDERS = "GET /api/v1/partner/orders"


@pytest.fixture
def shop(tmp_path: Path, sandbox: SandboxServer) -> OrderInstallation:
    return OrderInstallation.with_orders(tmp_path, sandbox)


def test_orders_first_pull_delivers_each_order_once(shop: OrderInstallation) -> None:
    """A first pull delivers every order with its prescription; a second delivers nothing."""
    order_ids = shop.store.create_sales(5)

    first = shop.pull()
    second = shop.pull()

    files = shop.delivered_orders()
    assert sorted(files) == sorted(order_ids)
    assert all(len(body["prescriptions"]) == 1 for body in files.values())
    assert all(body["order"]["payment"]["status"] == "paid" for body in files.values())
    assert first.delivered == 5
    assert first.failed == 0
    assert second.delivered == 0
    assert second.duplicates_skipped == 5
    assert second.checkpoint == first.checkpoint


def test_orders_created_while_paging_are_delivered(shop: OrderInstallation) -> None:
    """Sales made between two pages (2 per page) are read in the same pull and delivered once."""
    first_ids = shop.store.create_sales(5)
    later_ids: list[str] = []
    transport = AfterOrdersPage(lambda: later_ids.extend(shop.store.create_sales(3)))

    report = shop.pull(transport=transport)
    again = shop.pull()

    assert len(later_ids) == 3
    assert sorted(shop.delivered_orders()) == sorted(first_ids + later_ids)
    assert len(shop.order_files()) == 8
    assert report.pulled == 8
    assert report.delivered == 8
    assert again.delivered == 0


def test_orders_status_change_while_paging_misses_none(shop: OrderInstallation) -> None:
    """An order that moves to the end mid-listing is read again and shifts no other order."""
    order_ids = shop.store.create_sales(6)

    def move_first() -> None:
        shop.store.orders.change_status(order_ids[0], "in_progress")

    report = shop.pull(transport=AfterOrdersPage(move_first))

    files = shop.delivered_orders()
    assert report.listings == 1
    assert sorted(files) == sorted(order_ids)
    assert files[order_ids[0]]["order"]["status"] == "in_progress"
    assert report.delivered == 6


def test_orders_sharing_checkpoint_second_none_missed(shop: OrderInstallation) -> None:
    """Orders stamped with the checkpoint's whole second after a pull are still delivered once."""
    moment = whole_second() - timedelta(seconds=30)
    early = shop.store.create_sales(3)
    shop.stamp_orders(early, moment)
    first = shop.pull()
    late = shop.store.create_sales(2)
    shop.stamp_orders(late, moment)

    second = shop.pull()
    third = shop.pull()

    assert first.checkpoint == format_timestamp(moment)
    assert second.delivered == 2
    assert second.duplicates_skipped == 3
    assert third.delivered == 0
    assert sorted(shop.delivered_orders()) == sorted(early + late)
    assert len(shop.order_files()) == 5


@pytest.mark.parametrize("overlap_s", [0, 5], ids=["no-overlap", "overlap"])
def test_orders_checkpoint_is_inclusive(
    tmp_path: Path, sandbox: SandboxServer, overlap_s: int
) -> None:
    """With or without an overlap, an order at exactly the checkpoint is read again, not lost."""
    shop = OrderInstallation.with_orders(
        tmp_path, sandbox, orders_options=f"overlap_s = {overlap_s}"
    )
    moment = whole_second() - timedelta(seconds=10)
    shop.stamp_orders(shop.store.create_sales(1), moment)
    shop.pull()
    late = shop.store.create_sales(1)
    shop.stamp_orders(late, moment)

    report = shop.pull()

    assert report.delivered == 1
    assert late[0] in shop.delivered_orders()


def test_orders_sink_failure_holds_checkpoint(shop: OrderInstallation) -> None:
    """One order that cannot be written fails alone, keeps the checkpoint, and is delivered next."""
    order_ids = shop.store.create_sales(5)
    blocker = shop.orders_folder / f"{order_ids[2]}.json"
    blocker.mkdir(parents=True)

    failed = shop.pull()
    with shop.state() as store:
        held = read_checkpoint(store, "shop")
    blocker.rmdir()
    retried = shop.pull()

    third = shop.store.orders.get(order_ids[2])
    assert third is not None
    assert failed.delivered == 4
    assert failed.failed == 1
    assert failed.failed_order_ids == [order_ids[2]]
    assert order_ids[2] in failed.errors[0]
    assert held is not None
    assert format_timestamp(held) == third.to_wire(with_payment=False)["updated_at"]
    assert retried.delivered == 1
    assert retried.duplicates_skipped == 4
    assert sorted(shop.delivered_orders()) == sorted(order_ids)
    assert len(shop.order_files()) == 5


def test_orders_failure_in_early_chunk_holds_later_chunks(
    shop: OrderInstallation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later chunks that succeed do not move the checkpoint past an earlier failed order."""
    monkeypatch.setattr(sync.orders, "DELIVERY_CHUNK", 2)
    order_ids = shop.store.create_sales(6)
    blocker = shop.orders_folder / f"{order_ids[1]}.json"
    blocker.mkdir(parents=True)

    report = shop.pull()

    second = shop.store.orders.get(order_ids[1])
    assert second is not None
    assert report.delivered == 5
    assert report.failed_order_ids == [order_ids[1]]
    assert report.checkpoint == second.to_wire(with_payment=False)["updated_at"]


def test_orders_unreachable_sink_delivers_nothing(
    shop: OrderInstallation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sink folder that is a file fails every order, stops the pull and keeps the checkpoint."""
    monkeypatch.setattr(sync.orders, "DELIVERY_CHUNK", 2)
    order_ids = shop.store.create_sales(3)
    first = shop.store.orders.get(order_ids[0])
    assert first is not None
    shop.orders_folder.write_text("not a folder", encoding="utf-8")

    report = shop.pull()
    shop.orders_folder.unlink()
    retried = shop.pull()

    assert report.delivered == 0
    assert report.failed == 3
    assert report.failed_order_ids == order_ids
    assert report.checkpoint == first.to_wire(with_payment=False)["updated_at"]
    assert any("1 more order(s) not sent" in error for error in report.errors)
    assert retried.delivered == 3
    assert sorted(shop.delivered_orders()) == sorted(order_ids)


def test_orders_state_holds_ids_and_lines(shop: OrderInstallation) -> None:
    """delivered_orders keeps status, timestamps and (frame, quantity) lines for each order."""
    order_ids = shop.store.create_sales(2)
    shop.pull()

    with shop.state() as store:
        records = {record.order_id: record for record in list_orders(store, "shop")}
        checkpoint = store.get_bookmark("shop", ORDERS_CHECKPOINT)

    assert sorted(records) == sorted(order_ids)
    for order_id in order_ids:
        order = shop.store.orders.get(order_id)
        assert order is not None
        record = records[order_id]
        assert record.status == "pending"
        assert record.lines == ((order.lines[0].frame_id, 1),)
        assert record.delivered
        assert record.units == 1
    assert checkpoint is not None


def test_orders_status_filter_pulls_only_those(tmp_path: Path, sandbox: SandboxServer) -> None:
    """With statuses = ["in_progress"], pending orders are not pulled."""
    shop = OrderInstallation.with_orders(
        tmp_path, sandbox, orders_options='statuses = ["in_progress"]'
    )
    order_ids = shop.store.create_sales(3)
    shop.store.orders.change_status(order_ids[1], "in_progress")

    report = shop.pull()

    assert sorted(shop.delivered_orders()) == [order_ids[1]]
    assert report.pulled == 1


def test_orders_missing_prescription_scope_named(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A sink that wants prescriptions with a grant without prescriptions:read names that scope."""
    shop = OrderInstallation.with_orders(tmp_path, sandbox, scopes=("orders:read",))
    shop.store.create_sales(1)

    with pytest.raises(MissingScopeError) as caught:
        shop.pull()

    assert caught.value.scope == "prescriptions:read"
    assert "prescriptions:read" in str(caught.value)
    assert shop.order_files() == []


def test_orders_without_prescriptions_need_no_rx_scope(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A sink with prescriptions off works with orders:read alone and writes no prescriptions."""
    sink = 'adapter = "folder"\npath = "orders"'
    shop = OrderInstallation.with_orders(tmp_path, sandbox, scopes=("orders:read",), sink=sink)
    order_ids = shop.store.create_sales(2)

    report = shop.pull()

    files = shop.delivered_orders()
    assert report.delivered == 2
    assert sorted(files) == sorted(order_ids)
    assert all("prescriptions" not in body for body in files.values())
    assert "GET /api/v1/partner/prescriptions" not in shop.store.request_counts()


def test_orders_lists_once_per_page(shop: OrderInstallation) -> None:
    """Five orders at two per page take four list requests when nothing moves.

    Pages after the first repeat the last order read as their anchor, so they
    bring one new order each.
    """
    shop.store.create_sales(5)
    shop.store.reset_counts()

    shop.pull()

    assert shop.store.request_counts()[LIST_ORDERS] == 4


# Status transitions


TRANSITION_CASES = [
    ("shipped", "pending", "order ord_00000012: cannot go from shipped to pending; "
     "allowed from shipped: none", "shipped-to-pending"),
    ("pending", "completed", "order ord_00000012: cannot go from pending to completed; "
     "allowed from pending: cancelled, in_progress", "pending-to-completed"),
    ("cancelled", "in_progress", "order ord_00000012: cannot go from cancelled to in_progress; "
     "allowed from cancelled: none", "cancelled-to-in-progress"),
    ("pending", "done", "order ord_00000012: unknown status 'done'; statuses are pending, "
     "in_progress, completed, shipped, cancelled", "unknown-status"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "requested", "message"),
    [case[:3] for case in TRANSITION_CASES],
    ids=[case[3] for case in TRANSITION_CASES],
)
def test_change_status_rejects_invalid_transition(
    shop: OrderInstallation, current: str, requested: str, message: str
) -> None:
    """A change outside the table is an error naming order and transition; nothing is sent."""
    with shop.client() as client, pytest.raises(InvalidTransitionError) as caught:
        change_status(client, "ord_00000012", requested, current=current)

    assert str(caught.value) == message
    assert "PATCH /api/v1/partner/orders/{orderId}" not in shop.store.request_counts()


def test_change_status_sends_allowed_transition(shop: OrderInstallation) -> None:
    """pending -> in_progress is sent and the sandbox's order moves."""
    order_id = shop.store.create_sales(1)[0]

    with shop.client() as client:
        updated = change_status(client, order_id, "in_progress", current="pending")
        unchanged = change_status(client, order_id, "in_progress", current="in_progress")

    order = shop.store.orders.get(order_id)
    assert order is not None
    assert updated is not None
    assert updated.status == "in_progress"
    assert order.status == "in_progress"
    assert unchanged is None


def test_change_status_without_full_scope_named(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A grant without orders:full reports that scope by name."""
    shop = OrderInstallation.with_orders(tmp_path, sandbox, scopes=("orders:read",))
    order_id = shop.store.create_sales(1)[0]

    with shop.client() as client, pytest.raises(MissingScopeError) as caught:
        change_status(client, order_id, "in_progress", current="pending")

    assert caught.value.scope == "orders:full"


# Status source


def _status_shop(tmp_path: Path, sandbox: SandboxServer) -> OrderInstallation:
    source = (
        'adapter = "status-csv"\npath = "statuses.csv"\n'
        'columns = {order_id = "Order", status = "State"}\n'
        'status_map = {"In lab" = "in_progress", "Sent" = "shipped"}'
    )
    return OrderInstallation.with_orders(tmp_path, sandbox, status_source=source)


def _write_statuses(shop: OrderInstallation, rows: list[tuple[str, str]]) -> None:
    lines = ["Order,State"] + [f"{order_id},{state}" for order_id, state in rows]
    (shop.folder / "statuses.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_status_source_sends_only_allowed_changes(tmp_path: Path, sandbox: SandboxServer) -> None:
    """Allowed changes are sent once; invalid, unknown and unchanged rows are reported, not sent."""
    shop = _status_shop(tmp_path, sandbox)
    order_ids = shop.store.create_sales(4)
    _write_statuses(shop, [])
    shop.pull()
    _write_statuses(
        shop,
        [
            (order_ids[0], "In lab"),
            (order_ids[1], "completed"),
            (order_ids[2], "pending"),
            (order_ids[3], "Lost"),
            ("ord_99999999", "Sent"),
        ],
    )

    report = shop.pull()
    repeat = shop.pull()

    statuses = [shop.store.orders.get(order_id).status for order_id in order_ids]  # type: ignore[union-attr]
    assert statuses == ["in_progress", "pending", "pending", "pending"]
    assert report.status_updates_sent == 1
    assert report.status_updates_unchanged == 1
    assert report.status_updates_rejected == 3
    expected = (
        f"order {order_ids[1]}: cannot go from pending to completed; "
        "allowed from pending: cancelled, in_progress"
    )
    assert expected in report.errors
    assert any("statuses.csv:5" in error and "'Lost'" in error for error in report.errors)
    assert any("ord_99999999" in error and "404" in error for error in report.errors)
    assert repeat.status_updates_sent == 0
    assert repeat.status_updates_unchanged == 2
    assert repeat.delivered == 1
    assert shop.delivered_orders()[order_ids[0]]["order"]["status"] == "in_progress"


def test_status_source_stale_status_refetched(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A change refused with 409 (status moved on Eyekiosk) is rejected and rechecked next cycle."""
    shop = _status_shop(tmp_path, sandbox)
    order_id = shop.store.create_sales(1)[0]
    _write_statuses(shop, [])
    shop.pull()
    shop.store.orders.change_status(order_id, "cancelled")
    _write_statuses(shop, [(order_id, "In lab")])

    with shop.state() as store, shop.client() as client:
        from sync.orders import OrdersReport, open_status_source, push_statuses

        source = open_status_source(
            shop.job.orders.status_source,  # type: ignore[union-attr]
            job="shop",
            context=shop.context(),
        )
        first = OrdersReport(job="shop")
        push_statuses("shop", source, client=client, store=store, report=first)
        second = OrdersReport(job="shop")
        push_statuses("shop", source, client=client, store=store, report=second)

    assert first.status_updates_rejected == 1
    assert "409" in first.errors[0]
    assert second.errors == [
        f"order {order_id}: cannot go from cancelled to in_progress; allowed from cancelled: none"
    ]


def test_orders_folder_left_without_temp_files(shop: OrderInstallation) -> None:
    """After pulls, the sink folder holds only finished order files, each mode 0600."""
    shop.store.create_sales(4)
    shop.pull()
    shop.store.create_sales(1)
    shop.pull()

    files = shop.order_files()
    assert len(files) == 5
    assert all(path.suffix == ".json" and not path.name.startswith(".") for path in files)
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in files)
    shutil.rmtree(shop.orders_folder)


def test_orders_leaving_status_filter_while_paging_misses_none(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """An order that leaves the status filter mid-listing hides no other pending order.

    The order that moved to in_progress is no longer wanted; the three that
    stay pending are all delivered.
    """
    shop = OrderInstallation.with_orders(
        tmp_path, sandbox, orders_options='overlap_s = 5\nstatuses = ["pending"]'
    )
    order_ids = shop.store.create_sales(4)

    def move_first() -> None:
        shop.store.orders.change_status(order_ids[0], "in_progress")

    report = shop.pull(transport=AfterOrdersPage(move_first))

    assert sorted(shop.delivered_orders()) == sorted(order_ids[1:])
    assert report.delivered == 3
