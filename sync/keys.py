"""Normalise stock keys, SKUs and GTIN barcodes, so that equal keys compare equal.

The adapters and the diff use the same rules, so a key read from a stock export
and a key stored for an Eyekiosk frame end up in the same form. The Series
functions work column-wise on pyarrow-backed strings, with no Python loop over
rows. The scalar helpers at the end apply the same rules to one value.
"""

from __future__ import annotations

import unicodedata
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

STRING_DTYPE = pd.StringDtype("pyarrow")
GTIN_LENGTH = 14
# EAN-8, UPC-A, EAN-13 and GTIN-14: every GTIN is one of these once padded to 14 digits.
GTIN_INPUT_LENGTHS = (8, 12, 13, 14)
# GS1 weights for the 13 digits before the check digit of a GTIN-14, left to right.
GS1_WEIGHTS = np.array([3, 1] * 6 + [3], dtype=np.int64)
# Spaces and dashes inside a barcode, and the apostrophe that Excel puts in front
# of a number it must keep as text ('8720602828605).
# The pattern is RE2 syntax, which pyarrow uses.
_BARCODE_NOISE = r"^'|[\s\x{00a0}-]"

SkuCase = Literal["keep", "upper", "lower"]

# Composite keys: the parts in order, the text between them, and what is dropped
# from each part. Both patterns are RE2 syntax. ``composite_key`` applies the same
# rules in Python, with ``_COMPOSITE_NOISE_CONTROLS`` and the Unicode categories
# P* (punctuation), S* (symbols such as "+"), Z* (space separators) and M* (the
# accents that NFKD decomposition splits off, so "Café" matches "Cafe").
COMPOSITE_PARTS = ("brand", "model", "color_code", "eye_size")
COMPOSITE_SEPARATOR = "|"
_COMPOSITE_NOISE_CONTROLS = "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85"
_COMPOSITE_NOISE = r"[\p{P}\p{S}\p{Z}\p{M}\t\n\v\f\r\x{1c}-\x{1f}\x{85}]"
_DROPPED_CATEGORIES = ("P", "S", "Z", "M")
_COMPOSITE_SPACE = r"[\p{Z}\t\n\v\f\r\x{1c}-\x{1f}\x{85}]"
_LEADING_INTEGER = rf"^{_COMPOSITE_SPACE}*0*(?P<size>[0-9]+)"


class GtinResult(NamedTuple):
    """Barcodes after ``normalise_gtin``, aligned with its input.

    Attributes:
        values: 14-digit GTIN strings, <NA> where the input was empty or invalid.
        reasons: why each invalid barcode was rejected, <NA> where it was valid or empty.
    """

    values: pd.Series
    reasons: pd.Series

    @property
    def invalid(self) -> pd.Series:
        """Boolean mask of the barcodes that were not empty and not valid."""
        return self.reasons.notna()


def normalise_sku(series: pd.Series, *, case: SkuCase = "keep") -> pd.Series:
    """Strip surrounding whitespace from SKUs and turn empty ones into <NA>.

    Leading zeros stay, because the input is text. Case stays as it is by default,
    because a shop can list ``Woo-tshirt-logo`` and ``woo-tshirt-logo`` as two
    products. ``case="upper"`` or ``"lower"`` makes matching case-insensitive, as
    long as the other side of the comparison uses the same setting.

    Args:
        series: SKUs as text; <NA> and NaN count as empty.
        case: "keep", "upper" or "lower".

    Returns:
        A pyarrow-backed string Series with the same index.
    """
    text = _as_string(series).str.strip()
    if case == "upper":
        text = text.str.upper()
    elif case == "lower":
        text = text.str.lower()
    return text.mask(text.eq("").fillna(False))


def normalise_gtin(series: pd.Series, *, check_digit: bool = True) -> GtinResult:
    """Turn EAN-8, UPC-A, EAN-13 and GTIN-14 barcodes into 14-digit GTINs.

    Surrounding whitespace, inner spaces and dashes, and one leading apostrophe
    (Excel's text marker) are removed. The digits are then zero-padded on the left
    to 14, so UPC-A ``012345678905``, EAN-13 ``0012345678905`` and GTIN-14
    ``00012345678905`` all become ``00012345678905``.

    Args:
        series: barcodes as text; <NA>, NaN and blank cells count as empty.
        check_digit: also reject barcodes whose last digit is not the GS1 check digit.

    Returns:
        The GTIN-14 values and, for invalid barcodes, the reason. An empty input is
        <NA> in both, so the caller decides whether a missing barcode is an error.
    """
    raw = _as_string(series)
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(pa.array(raw)), _BARCODE_NOISE, "")
    length = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
    empty = _mask(pc.equal(text, ""), default=True)
    digits_only = _mask(pc.match_substring_regex(text, "^[0-9]+$"), default=False)
    length_ok = np.isin(length, GTIN_INPUT_LENGTHS)
    padded = pc.utf8_lpad(text, GTIN_LENGTH, "0")

    # Reasons are built for the invalid rows only, so valid input costs nothing here.
    reasons = pd.Series(pd.NA, index=raw.index, dtype=STRING_DTYPE)
    not_digits = ~empty & ~digits_only
    _set_reasons(
        reasons,
        not_digits,
        [f"barcode '{value}' contains characters other than digits" for value in raw[not_digits]],
    )
    wrong_length = ~empty & digits_only & ~length_ok
    _set_reasons(
        reasons,
        wrong_length,
        [
            f"barcode '{value}' has {count} digits, but a GTIN has 8, 12, 13 or 14"
            for value, count in zip(raw[wrong_length], length[wrong_length], strict=True)
        ],
    )

    well_formed = ~empty & digits_only & length_ok
    if check_digit and well_formed.any():
        found, expected = _check_digits(padded.filter(pa.array(well_formed)))
        wrong = found != expected
        mismatch = np.zeros(len(raw), dtype=bool)
        mismatch[well_formed] = wrong
        _set_reasons(
            reasons,
            mismatch,
            [
                f"barcode '{value}' ends in {last}, but its GS1 check digit is {digit}"
                for value, last, digit in zip(
                    raw[mismatch], found[wrong], expected[wrong], strict=True
                )
            ],
        )
        well_formed &= ~mismatch

    values = pc.if_else(pa.array(well_formed), padded, pa.scalar(None, padded.type))
    return GtinResult(values=_to_series(values, raw.index), reasons=reasons)


class CompositeResult(NamedTuple):
    """Composite keys after ``normalise_composite``, aligned with its input.

    Attributes:
        values: keys such as ``rayban|rx5154|2000|53``, <NA> where a part is empty.
        reasons: why each key is missing, naming the first empty part; <NA> where
            the key was built.
    """

    values: pd.Series
    reasons: pd.Series


def normalise_composite(parts: pd.DataFrame) -> CompositeResult:
    """Build composite frame keys from brand, model, colour code and eye size.

    Each of the first three parts is case-folded (``str.casefold``, so ``ß``
    matches ``ss``) and decomposed (NFKD), and whitespace, punctuation,
    symbols and accents are dropped from it, so ``Ray-Ban``, ``RAY BAN``,
    ``Ray+Ban`` and ``ray.ban`` all give ``rayban`` and ``Café`` gives ``cafe``. The eye size
    is the leading whole number of its cell without leading zeros, so ``53``,
    ``53.0``, ``053``, ``53-17-145`` and ``53□17`` all give ``53``. The four
    parts are joined with ``|``.

    Args:
        parts: four columns in the order brand, model, colour code, eye size;
            their names do not matter. Cells are text; <NA> and NaN count as empty.

    Returns:
        The keys and, for each row without a key, the reason: a part that is
        empty after dropping whitespace and punctuation, or an eye size that
        does not start with a digit.

    Raises:
        ValueError: when ``parts`` does not have exactly four columns.
    """
    if parts.shape[1] != len(COMPOSITE_PARTS):
        raise ValueError(
            f"a composite key has {len(COMPOSITE_PARTS)} parts (brand, model, colour code, "
            f"eye size), not {parts.shape[1]}"
        )
    names = [str(name) for name in parts.columns]
    reasons = pd.Series(pd.NA, index=parts.index, dtype=STRING_DTYPE)
    missing = np.zeros(len(parts), dtype=bool)
    pieces: list[pa.ChunkedArray | pa.Array] = []

    # Brand, model and colour code: fold case, then drop spaces and punctuation.
    for position in range(3):
        raw = _as_string(parts.iloc[:, position])
        decomposed = pc.utf8_normalize(_casefold(raw), form="NFKD")
        text = pc.replace_substring_regex(decomposed, _COMPOSITE_NOISE, "")
        empty = _mask(pc.equal(text, ""), default=True)
        _set_reasons(
            reasons, empty & ~missing, _part_empty(names[position], int((empty & ~missing).sum()))
        )
        missing |= empty
        pieces.append(pc.cast(text, pa.large_string()))

    # Eye size: the leading whole number of the cell.
    raw = _as_string(parts.iloc[:, 3])
    text = pc.fill_null(pa.array(raw), "")
    size = pc.struct_field(pc.extract_regex(text, _LEADING_INTEGER), [0])
    blank = _mask(
        pc.equal(pc.replace_substring_regex(text, _COMPOSITE_NOISE, ""), ""), default=True
    )
    no_number = _mask(pc.is_null(size), default=True) & ~blank
    _set_reasons(reasons, blank & ~missing, _part_empty(names[3], int((blank & ~missing).sum())))
    _set_reasons(
        reasons,
        no_number & ~missing,
        [
            f"eye size '{value}' in column {names[3]!r} does not start with a number"
            for value in raw[no_number & ~missing]
        ],
    )
    missing |= blank | no_number
    pieces.append(pc.cast(pc.fill_null(size, ""), pa.large_string()))

    joined = pc.binary_join_element_wise(*pieces, pa.scalar(COMPOSITE_SEPARATOR, pa.large_string()))
    values = pc.if_else(pa.array(~missing), joined, pa.scalar(None, pa.large_string()))
    return CompositeResult(values=_to_series(values, parts.index), reasons=reasons)


def composite_key(
    brand: str | None,
    model: str | None,
    color_code: str | None,
    eye_size: int | str | None,
) -> str | None:
    """Build the composite key of one frame, with the rules of ``normalise_composite``.

    The mirror calls this on Eyekiosk frames, whose ``eye_size`` is an integer,
    so their keys match the keys that an adapter builds from an export's cells.

    Returns:
        The key, or None when a part is empty or the eye size does not start
        with a number.
    """
    texts = [_composite_text(part) for part in (brand, model, color_code)]
    size = _leading_integer(eye_size)
    if not all(texts) or size is None:
        return None
    return COMPOSITE_SEPARATOR.join([*texts, size])


def gs1_check_digit(body: str) -> int:
    """Compute the GS1 check digit for the digits of a GTIN without its last digit.

    Args:
        body: 7, 11, 12 or 13 ASCII digits, or any other length up to 17.

    Returns:
        The digit from 0 to 9 that completes the GTIN.

    Raises:
        ValueError: when ``body`` is empty or contains anything but ASCII digits.
    """
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(f"a GTIN body is ASCII digits only, not {body!r}")
    # Weights run 3, 1, 3, … from the rightmost digit of the body.
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin14(text: str | None, *, check_digit: bool = True) -> str | None:
    """Normalise one barcode like ``normalise_gtin``.

    Returns:
        The 14-digit GTIN, or None when the text is empty or not a valid GTIN.
    """
    if text is None:
        return None
    value = normalise_gtin(pd.Series([text], dtype=STRING_DTYPE), check_digit=check_digit).values[0]
    return None if pd.isna(value) else str(value)


def _as_string(series: pd.Series) -> pd.Series:
    if series.dtype == STRING_DTYPE:
        return series
    return series.astype(STRING_DTYPE)


def _casefold(series: pd.Series) -> pa.ChunkedArray | pa.Array:
    """Case-fold text like ``str.casefold``, with <NA> as empty text.

    pyarrow's lower-casing equals ``str.casefold`` on ASCII, so only rows with
    other characters go through Python.
    """
    text = pc.fill_null(pa.array(series), "")
    lowered = pc.utf8_lower(text)
    ascii_only = _mask(pc.string_is_ascii(text), default=True)
    if ascii_only.all():
        return lowered
    folded = lowered.to_pylist()
    for position in np.flatnonzero(~ascii_only):
        folded[position] = series.iloc[position].casefold()
    return pa.array(folded, type=pa.large_string())


def _part_empty(name: str, count: int) -> list[str]:
    return [f"composite key part {name!r} is empty"] * count


def _is_composite_space(character: str) -> bool:
    return character in _COMPOSITE_NOISE_CONTROLS or unicodedata.category(character)[0] == "Z"


def _composite_text(part: str | None) -> str:
    if part is None:
        return ""
    decomposed = unicodedata.normalize("NFKD", part.casefold())
    return "".join(
        c
        for c in decomposed
        if not (c in _COMPOSITE_NOISE_CONTROLS or unicodedata.category(c)[0] in _DROPPED_CATEGORIES)
    )


def _leading_integer(value: int | str | None) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    start = 0
    while start < len(value) and _is_composite_space(value[start]):
        start += 1
    end = start
    while end < len(value) and value[end] in "0123456789":
        end += 1
    if end == start:
        return None
    return value[start:end].lstrip("0") or "0"


def _set_reasons(reasons: pd.Series, mask: np.ndarray, texts: list[str]) -> None:
    if texts:
        reasons.iloc[np.flatnonzero(mask)] = texts


def _mask(values: pa.Array | pa.ChunkedArray, *, default: bool) -> np.ndarray:
    """Turn a pyarrow boolean array into a NumPy mask, with nulls set to default."""
    return np.asarray(pc.fill_null(values, default).to_numpy(zero_copy_only=False), dtype=bool)


def _to_series(values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(values), index=index).astype(STRING_DTYPE)


def _check_digits(padded: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Return the last digit and the GS1 check digit of each 14-digit ASCII string."""
    # The strings are all 14 ASCII bytes long and laid out back to back in the
    # data buffer, so the buffer is directly an n-by-14 matrix of digit bytes.
    combined = padded.combine_chunks() if isinstance(padded, pa.ChunkedArray) else padded
    offsets_type = np.int64 if pa.types.is_large_string(combined.type) else np.int32
    offsets = np.frombuffer(combined.buffers()[1], dtype=offsets_type)
    first = int(offsets[combined.offset])
    data = np.frombuffer(combined.buffers()[2], dtype=np.uint8)
    matrix = data[first : first + GTIN_LENGTH * len(combined)].reshape(-1, GTIN_LENGTH)
    digits = matrix.astype(np.int64) - ord("0")
    expected = (10 - (digits[:, :-1] @ GS1_WEIGHTS) % 10) % 10
    return digits[:, -1], expected


__all__ = [
    "COMPOSITE_PARTS",
    "COMPOSITE_SEPARATOR",
    "GTIN_LENGTH",
    "STRING_DTYPE",
    "CompositeResult",
    "GtinResult",
    "SkuCase",
    "composite_key",
    "gs1_check_digit",
    "gtin14",
    "normalise_composite",
    "normalise_gtin",
    "normalise_sku",
]
