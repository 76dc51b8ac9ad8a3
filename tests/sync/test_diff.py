"""Tests of the source-versus-mirror comparison."""

from __future__ import annotations

import pandas as pd
import pytest

from sync.diff import compute_changes


def _source(rows: list[tuple[str, int, int | None]]) -> pd.DataFrame:
    keys, quantities, prices = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame(
        {
            "key": pd.Series(keys, dtype="string"),
            "quantity": pd.Series(quantities, dtype="Int64"),
            "price_cents": pd.Series(prices, dtype="Int64"),
        }
    )


def _mirror(rows: list[tuple[str, str, str | None, int, int | None]]) -> pd.DataFrame:
    ids, skus, gtins, quantities, prices = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="string"),
            "sku": pd.Series(skus, dtype="string"),
            "gtin14": pd.Series(gtins, dtype="string"),
            "quantity": pd.Series(quantities, dtype="Int64"),
            "price_cents": pd.Series(prices, dtype="Int64"),
        }
    )


MIRROR = _mirror(
    [
        ("frm_1", "A", "00012345678905", 2, 1000),
        ("frm_2", "B", None, 5, 2000),
        ("frm_3", "C", None, 0, 3000),
    ]
)


def test_compute_changes_only_differing_fields() -> None:
    """A quantity change sends only the quantity, a price change only the price."""
    source = _source([("A", 3, 1000), ("B", 5, 2500), ("C", 0, 3000)])

    result = compute_changes(source, MIRROR)

    changes = result.changes.set_index("frame_id")
    assert sorted(changes.index) == ["frm_1", "frm_2"]
    assert changes.loc["frm_1", "quantity"] == 3
    assert pd.isna(changes.loc["frm_1", "price_cents"])
    assert pd.isna(changes.loc["frm_2", "quantity"])
    assert changes.loc["frm_2", "price_cents"] == 2500


def test_compute_changes_missing_price_leaves_price_alone() -> None:
    """A source row without a price never clears or changes the remote price."""
    source = _source([("A", 2, None)])

    result = compute_changes(source, MIRROR)

    assert result.changes.empty


def test_compute_changes_unknown_keys_reported_not_posted() -> None:
    """Source keys that match no frame are listed and produce no change."""
    source = _source([("A", 2, 1000), ("ZZZ", 9, 100)])

    result = compute_changes(source, MIRROR)

    assert result.unknown_keys == ["ZZZ"]
    assert result.changes.empty


def test_compute_changes_missing_frames_left_alone_by_default() -> None:
    """Frames the source lacks keep their stock unless the job sets missing = "zero"."""
    source = _source([("A", 2, 1000)])

    kept = compute_changes(source, MIRROR)
    zeroed = compute_changes(source, MIRROR, missing="zero")

    assert kept.changes.empty
    assert zeroed.zeroed == 1
    assert zeroed.changes["frame_id"].tolist() == ["frm_2"]
    assert zeroed.changes["quantity"].tolist() == [0]


def test_compute_changes_match_on_upc_uses_gtin14() -> None:
    """Matching on UPC compares the source key with the frame's GTIN-14."""
    source = _source([("00012345678905", 7, None)])

    result = compute_changes(source, MIRROR, match_on="upc")

    assert result.changes["frame_id"].tolist() == ["frm_1"]
    assert result.changes["quantity"].tolist() == [7]


def test_compute_changes_ambiguous_keys_not_posted() -> None:
    """A key that names two frames is reported as ambiguous and not posted."""
    mirror = _mirror([("frm_1", "A", None, 1, 100), ("frm_2", "A", None, 1, 100)])
    source = _source([("A", 5, 100)])

    result = compute_changes(source, mirror)

    assert result.ambiguous_keys == ["A"]
    assert result.unknown_keys == []
    assert result.changes.empty


@pytest.mark.parametrize("update_price", [True, False], ids=["prices-on", "prices-off"])
def test_compute_changes_update_price_switch(update_price: bool) -> None:
    """With update_price off, a price difference alone produces no change."""
    source = _source([("B", 5, 9999)])

    result = compute_changes(source, MIRROR, update_price=update_price)

    assert len(result.changes) == (1 if update_price else 0)


def test_compute_changes_ignores_rows_without_key_or_quantity() -> None:
    """A row without a key or quantity is dropped, not compared or netted."""
    source = pd.DataFrame(
        {
            "key": pd.Series([None, "ZZZ", "A"], dtype="string"),
            "quantity": pd.Series([1, 1, None], dtype="Int64"),
            "price_cents": pd.Series([None, None, None], dtype="Int64"),
        }
    )
    netted = pd.Series([1], index=pd.Index(["frm_1"], dtype="string"), dtype="Int64")

    result = compute_changes(source, MIRROR, netted=netted)

    assert result.unknown_keys == ["ZZZ"]
    assert result.changes.empty
