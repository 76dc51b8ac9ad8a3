"""Tests of key normalisation: SKUs, GTIN barcodes and composite frame keys."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sync.keys import (
    STRING_DTYPE,
    composite_key,
    gs1_check_digit,
    gtin14,
    normalise_composite,
    normalise_gtin,
    normalise_sku,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def test_normalise_sku_strips_and_keeps_zeros() -> None:
    """SKUs lose surrounding whitespace but keep leading zeros and case."""
    result = normalise_sku(pd.Series([" 00123 ", "Woo-tshirt-logo\t"]))

    assert result.tolist() == ["00123", "Woo-tshirt-logo"]
    assert result.dtype == STRING_DTYPE


def test_normalise_sku_empty_becomes_na() -> None:
    """Empty, blank and missing SKUs all become <NA>."""
    result = normalise_sku(pd.Series(["", "   ", None, "A"], dtype=object))

    assert result.isna().tolist() == [True, True, True, False]


@pytest.mark.parametrize(
    ("case", "expected"),
    [("keep", "Woo-Cap"), ("upper", "WOO-CAP"), ("lower", "woo-cap")],
    ids=["keep", "upper", "lower"],
)
def test_normalise_sku_case_option(case: str, expected: str) -> None:
    """The case option keeps, upper-cases or lower-cases the SKU."""
    assert normalise_sku(pd.Series(["Woo-Cap"]), case=case).iloc[0] == expected  # type: ignore[arg-type]


def test_normalise_gtin_upc_ean_gtin14_equal() -> None:
    """UPC-A, EAN-13 and GTIN-14 forms of one product normalise to the same GTIN-14."""
    result = normalise_gtin(pd.Series(["012345678905", "0012345678905", "00012345678905"]))

    assert result.values.tolist() == ["00012345678905"] * 3
    assert not result.invalid.any()


def test_normalise_gtin_ean8_padded() -> None:
    """An EAN-8 barcode is zero-padded to 14 digits."""
    assert normalise_gtin(pd.Series(["96385074"])).values.iloc[0] == "00000096385074"


def test_normalise_gtin_strips_apostrophe_spaces_dashes() -> None:
    """Excel's leading apostrophe, spaces and dashes are removed before checking."""
    result = normalise_gtin(pd.Series(["'8720602828605", " 4006-381 333931 "]))

    assert result.values.tolist() == ["08720602828605", "04006381333931"]


def test_normalise_gtin_sample_barcodes_valid() -> None:
    """The barcodes of the sample exports carry correct GS1 check digits."""
    samples = pd.read_csv(DATA / "stock_export_us.csv", dtype=str)["UPC"]

    result = normalise_gtin(samples)

    assert not result.invalid.any()
    assert result.values.notna().all()


@pytest.mark.parametrize(
    ("barcode", "fragment"),
    [
        ("8052892140275", "ends in 5, but its GS1 check digit is 4"),
        ("80528921402A4", "contains characters other than digits"),
        ("12345", "has 5 digits, but a GTIN has 8, 12, 13 or 14"),
        ("123456789012345", "has 15 digits"),
    ],
    ids=["check-digit", "letter", "too-short", "too-long"],
)
def test_normalise_gtin_invalid_reasons(barcode: str, fragment: str) -> None:
    """An invalid barcode becomes <NA> with a reason that names it and the problem."""
    result = normalise_gtin(pd.Series([barcode]))

    assert pd.isna(result.values.iloc[0])
    assert result.invalid.iloc[0]
    assert f"barcode '{barcode}'" in result.reasons.iloc[0]
    assert fragment in result.reasons.iloc[0]


def test_normalise_gtin_check_digit_optional() -> None:
    """With check_digit=False a barcode with a wrong check digit is accepted."""
    result = normalise_gtin(pd.Series(["8052892140275"]), check_digit=False)

    assert result.values.iloc[0] == "08052892140275"
    assert not result.invalid.any()


def test_normalise_gtin_empty_not_invalid() -> None:
    """Empty barcodes are <NA> without a reason, so the caller decides."""
    result = normalise_gtin(pd.Series(["", None, "  "], dtype=object))

    assert result.values.isna().all()
    assert not result.invalid.any()


def test_normalise_gtin_keeps_index() -> None:
    """The result is aligned with the input's index."""
    series = pd.Series(["012345678905", "x"], index=[10, 20])

    result = normalise_gtin(series)

    assert result.values.index.tolist() == [10, 20]
    assert result.reasons.index.tolist() == [10, 20]


def test_gs1_check_digit_known_values() -> None:
    """The check digit matches published GTINs of 8, 12 and 13 digits."""
    assert gs1_check_digit("9638507") == 4
    assert gs1_check_digit("01234567890") == 5
    assert gs1_check_digit("805289214027") == 4


def test_gs1_check_digit_rejects_non_digits() -> None:
    """A body with anything but ASCII digits raises ValueError."""
    with pytest.raises(ValueError, match="ASCII digits"):
        gs1_check_digit("12a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("012345678905", "00012345678905"),
        ("'8720602828605", "08720602828605"),
        ("8052892140275", None),
        ("", None),
        (None, None),
    ],
    ids=["upc-a", "apostrophe", "bad-check-digit", "empty", "none"],
)
def test_gtin14_scalar(text: str | None, expected: str | None) -> None:
    """gtin14 applies the Series rules to one value."""
    assert gtin14(text) == expected


def test_normalise_gtin_million_rows_fast() -> None:
    """A million valid barcodes normalise in well under the time of reading them."""
    import time

    series = pd.Series(["012345678905", "0012345678905"] * 500_000, dtype=STRING_DTYPE)

    started = time.perf_counter()
    result = normalise_gtin(series)
    elapsed = time.perf_counter() - started

    assert not result.invalid.any()
    # NOTE: a generous bound for slow CI machines; it takes about 0.3 s on 2 cores.
    assert elapsed < 5


# Composite keys


def _parts(*rows: tuple[object, object, object, object]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["Brand", "Model", "Color Code", "Eye"]).astype(STRING_DTYPE)


@pytest.mark.parametrize(
    ("eye", "expected"),
    [
        ("53", "53"),
        ("53.0", "53"),
        ("053", "53"),
        ("53-17-145", "53"),
        ("53□17", "53"),
        (" 53 ", "53"),
        ("0", "0"),
    ],
    ids=["plain", "float", "leading-zero", "de-size", "box-glyph", "spaces", "zero"],
)
def test_normalise_composite_eye_size(eye: str, expected: str) -> None:
    """The eye size part is the leading whole number of its cell."""
    result = normalise_composite(_parts(("Ray-Ban", "RX5154", "2000", eye)))

    assert result.values[0] == f"rayban|rx5154|2000|{expected}"
    assert pd.isna(result.reasons[0])


def test_normalise_composite_folds_case_and_punctuation() -> None:
    """Case, whitespace and punctuation differences give the same key."""
    result = normalise_composite(
        _parts(
            ("Ray-Ban", "RX5154", "2000", "53"),
            ("RAY BAN", "rx 5154", " 2000 ", "53"),
            ("ray.ban", "RX-5154", "2.000", "53.0"),
        )
    )

    assert result.values.tolist() == ["rayban|rx5154|2000|53"] * 3


def test_normalise_composite_casefold_non_ascii() -> None:
    """Non-ASCII text is case-folded like str.casefold, so ß matches SS, and loses accents."""
    result = normalise_composite(
        _parts(("Straße", "Ærø", "GRÜN", "50"), ("STRASSE", "ærø", "grun", "50"))
    )

    assert result.values.tolist() == ["strasse|ærø|grun|50", "strasse|ærø|grun|50"]


def test_normalise_composite_drops_symbols_and_accents() -> None:
    """A plus sign and an accent do not keep two spellings of one brand apart."""
    result = normalise_composite(
        _parts(("Ray+Ban", "Café", "2000", "53mm"), ("Ray Ban", "CAFE", "2000", "53/17"))
    )

    assert result.values.tolist() == ["rayban|cafe|2000|53", "rayban|cafe|2000|53"]
    assert composite_key("Ray+Ban", "Café", "2000", 53) == "rayban|cafe|2000|53"


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ((None, "RX5154", "2000", "53"), "part 'Brand' is empty"),
        (("Ray-Ban", "", "2000", "53"), "part 'Model' is empty"),
        (("Ray-Ban", "RX5154", " - ", "53"), "part 'Color Code' is empty"),
        (("Ray-Ban", "RX5154", "2000", ""), "part 'Eye' is empty"),
        (("Ray-Ban", "RX5154", "2000", "large"), "eye size 'large' in column 'Eye' does not start"),
    ],
    ids=["brand-missing", "model-empty", "colour-punctuation-only", "eye-empty", "eye-text"],
)
def test_normalise_composite_missing_part(row: tuple[object, ...], fragment: str) -> None:
    """A row with an empty part or an eye size without a number has no key and a reason."""
    result = normalise_composite(_parts(row))  # type: ignore[arg-type]

    assert pd.isna(result.values[0])
    assert fragment in str(result.reasons[0])


def test_normalise_composite_needs_four_columns() -> None:
    """Three columns raise ValueError."""
    with pytest.raises(ValueError, match="4 parts"):
        normalise_composite(pd.DataFrame({"a": ["x"], "b": ["y"], "c": ["z"]}))


@pytest.mark.parametrize(
    "row",
    [
        ("Ray-Ban", "RX5154", "2000", "53-17-145"),
        ("RAY BAN", "rx 5154", "2000", "053.0"),
        ("Straße", "M\u00a01", "ß", "50"),
        ("Oakley", "OX8046", "0157", "57□16"),
        ("", "RX5154", "2000", "53"),
        ("Ray-Ban", "RX5154", "2000", "large"),
        ("Ray-Ban", "RX5154", "...", "53"),
    ],
)
def test_composite_key_matches_vectorised(row: tuple[str, str, str, str]) -> None:
    """composite_key gives what normalise_composite gives for the same cells."""
    vectorised = normalise_composite(_parts(row)).values[0]

    assert composite_key(*row) == (None if pd.isna(vectorised) else vectorised)


def test_composite_key_integer_eye_size() -> None:
    """An Eyekiosk frame's integer eye size gives the same key as the export's cell."""
    assert composite_key("Ray-Ban", "RX5154", "2000", 53) == "rayban|rx5154|2000|53"
    assert composite_key("Ray-Ban", "RX5154", None, 53) is None
    assert composite_key("Ray-Ban", "RX5154", "2000", None) is None
