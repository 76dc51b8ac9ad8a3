"""Frames list: paging, filters, ordering and seeding, over HTTP."""

from __future__ import annotations

import csv
from decimal import Decimal

import httpx
import numpy as np
import pytest

from sync.models import Frame, Page
from sync.sandbox import SandboxServer
from sync.sandbox.seeding import ean13_check_digits, generate_frames
from tests.conftest import US_EXPORT, MintToken, store
from tests.sync.sandbox.conftest import bearer

FRAMES = "/api/v1/partner/frames"


def fetch_all(http: httpx.Client, token: str, limit: int, **params: str) -> tuple[list[dict], int]:
    """Page through the frames list until a page comes back empty."""
    seen: list[dict] = []
    total = -1
    while True:
        response = http.get(
            FRAMES, params={"limit": limit, "offset": len(seen), **params}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        total = page["pagination"]["total"]
        if not page["data"]:
            return seen, total
        seen.extend(page["data"])


def test_frames_page_to_end(http: httpx.Client, mint_token: MintToken) -> None:
    """Paging by limit and offset returns every frame once, in updated_at then id order."""
    frames, total = fetch_all(http, mint_token("frames:read"), limit=37)

    assert total == 500
    assert len(frames) == 500
    assert len({frame["id"] for frame in frames}) == 500
    keys = [(frame["updated_at"], frame["id"]) for frame in frames]
    assert keys == sorted(keys)


def test_frames_page_validates_against_models(http: httpx.Client, mint_token: MintToken) -> None:
    """A frames page parses with the wire models, and timestamps carry microseconds and Z."""
    response = http.get(FRAMES, params={"limit": 5}, headers=bearer(mint_token("frames:read")))

    page = Page[Frame].model_validate(response.json())
    assert page.pagination.limit == 5
    assert len(page.data) == 5
    assert response.json()["data"][0]["updated_at"].endswith("Z")
    assert len(response.json()["data"][0]["updated_at"]) == len("2026-12-04T19:57:07.123456Z")


def test_frames_paging_matches_offsets_after_write(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """A write between pages shifts later pages exactly as plain offset paging would."""
    token = mint_token("frames:read")
    first = http.get(FRAMES, params={"limit": 10}, headers=bearer(token)).json()["data"]
    store(sandbox).set_frame(first[3]["id"], quantity=first[3]["quantity"] + 1)

    second = http.get(FRAMES, params={"limit": 10, "offset": 10}, headers=bearer(token)).json()
    # The changed frame moved to the end, so offset 10 now starts at the old 12th frame.
    third_page_head = http.get(FRAMES, params={"limit": 1, "offset": 9}, headers=bearer(token))

    all_frames, _ = fetch_all(http, token, limit=500)
    assert second["data"] == all_frames[10:20]
    assert third_page_head.json()["data"] == all_frames[9:10]
    assert all_frames[-1]["id"] == first[3]["id"]


def test_frames_updated_since_inclusive(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """updated_since returns a frame whose updated_at equals it, and none older."""
    token = mint_token("frames:read")
    stamps = store(sandbox).touch_frames(["frm_00000007", "frm_00000008"])

    response = http.get(FRAMES, params={"updated_since": stamps[0]}, headers=bearer(token))

    ids = [frame["id"] for frame in response.json()["data"]]
    assert ids == ["frm_00000007", "frm_00000008"]
    assert response.json()["pagination"]["total"] == 2


def test_frames_updated_since_accepts_offsets(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """updated_since given with a +02:00 offset selects the same instant as the Z form."""
    token = mint_token("frames:read")
    store(sandbox).touch_frames(["frm_00000003"], "2030-01-01T12:00:00.000001Z")

    response = http.get(
        FRAMES, params={"updated_since": "2030-01-01T14:00:00.000001+02:00"}, headers=bearer(token)
    )

    assert [frame["id"] for frame in response.json()["data"]] == ["frm_00000003"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"in_stock": "yes"}, "in_stock"),
        ({"updated_since": "2026-12-04T19:57:07"}, "updated_since"),
    ],
    ids=["limit-zero", "limit-over-max", "offset-negative", "in-stock-word", "naive-timestamp"],
)
def test_frames_invalid_parameter(
    http: httpx.Client, mint_token: MintToken, params: dict[str, str], name: str
) -> None:
    """A malformed list parameter is a 400 invalid_request that names the parameter."""
    response = http.get(FRAMES, params=params, headers=bearer(mint_token("frames:read")))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert name in response.json()["error"]["message"]


def test_frames_brand_and_stock_filters(http: httpx.Client, mint_token: MintToken) -> None:
    """brand matches case-insensitively and in_stock splits the list by quantity."""
    token = mint_token("frames:read")

    oakley, oakley_total = fetch_all(http, token, limit=500, brand="oAkLeY")
    in_stock, in_total = fetch_all(http, token, limit=500, in_stock="true")
    out_of_stock, out_total = fetch_all(http, token, limit=500, in_stock="false")

    assert oakley_total == len(oakley) > 0
    assert {frame["brand"] for frame in oakley} == {"Oakley"}
    assert in_total + out_total == 500
    assert all(frame["quantity"] > 0 and frame["in_stock"] for frame in in_stock)
    assert all(frame["quantity"] == 0 and not frame["in_stock"] for frame in out_of_stock)


def test_seeding_change_share_differs_from_csv(
    sandbox: SandboxServer, http: httpx.Client, mint_token: MintToken
) -> None:
    """Exactly round(500 * 0.05) frames differ from the CSV in quantity or price."""
    with US_EXPORT.open(newline="") as handle:
        rows = {row["Item Code"]: row for row in csv.DictReader(handle)}
    frames, _ = fetch_all(http, mint_token("frames:read"), limit=500)

    differing = {
        frame["id"]
        for frame in frames
        if frame["quantity"] != int(rows[frame["sku"]]["On Hand"])
        or Decimal(frame["price"]) != Decimal(rows[frame["sku"]]["Retail Price"])
    }
    changed = store(sandbox).frame_ids_by_position(store(sandbox).changed_positions)
    assert len(differing) == 25
    assert differing == set(changed)
    assert frames[0]["upc"] == rows[frames[0]["sku"]]["UPC"]


def test_generated_frames_valid_and_deterministic() -> None:
    """Generated frames have unique SKUs and UPCs with valid EAN-13 check digits, seed by seed."""
    rows = list(generate_frames(2_000, seed=7).rows())
    again = list(generate_frames(2_000, seed=7).rows())

    upcs = [row[1] for row in rows]
    assert rows == again
    assert rows[0][0] == "FR-0000001"
    assert len(set(upcs)) == 2_000
    assert all(len(upc) == 13 and upc.isdigit() for upc in upcs)
    bodies = np.array([int(upc[:12]) for upc in upcs])
    assert [int(upc[12]) for upc in upcs] == ean13_check_digits(bodies).tolist()


def test_ean13_check_digit_known_value() -> None:
    """The check digit of 400638133393 is 1 (EAN 4006381333931, a published example)."""
    assert ean13_check_digits(np.array([400638133393]))[0] == 1
