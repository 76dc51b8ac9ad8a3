"""Tests of the mirror refresh over real HTTP to the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sync.client import PartnerClient, RetryPolicy
from sync.mirror import refresh_mirror
from sync.sandbox import SandboxServer, SandboxStore
from sync.state import StateStore


class AfterFirstPage(httpx.HTTPTransport):
    """A real transport that runs an action once, right after the first frames page."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__()
        self._action: Callable[[], None] | None = action

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self._action is not None and request.url.path.endswith("/frames"):
            response.read()
            action, self._action = self._action, None
            action()
        return response


def _client(
    sandbox: SandboxServer, token: str, transport: httpx.BaseTransport | None = None
) -> PartnerClient:
    return PartnerClient(
        sandbox.url,
        auth=_Bearer(token),
        retry=RetryPolicy.disabled(),
        page_limit=100,
        transport=transport,
    )


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        yield store  # type: ignore[misc]


def _store(sandbox: SandboxServer) -> SandboxStore:
    assert sandbox.store is not None
    return sandbox.store


def test_mirror_full_rescan_pages_to_the_end(sandbox: SandboxServer, state: StateStore) -> None:
    """A first refresh reads all 500 frames in pages of 100 and sets the watermark."""
    token = _store(sandbox).mint_token(["frames:read"])
    with _client(sandbox, token) as client:
        result = refresh_mirror(client, state, overlap_s=2, full=False)

    assert result.full
    assert result.fetched == 500
    assert state.mirror_size() == 500
    assert state.frames_watermark() is not None
    # 100 frames, then 99 new ones per page after the anchor frame.
    assert client.request_counts["GET /api/v1/partner/frames"] == 6


def test_mirror_list_moving_mid_scan_misses_nothing(
    sandbox: SandboxServer, state: StateStore
) -> None:
    """A frame updated mid-scan moves to the end; no later frame is skipped by the shift."""
    store = _store(sandbox)
    token = store.mint_token(["frames:read"])
    first_frame = store.frame_ids_by_position([0])[0]
    transport = AfterFirstPage(lambda: store.touch_frames([first_frame]))

    with _client(sandbox, token, transport) as client:
        result = refresh_mirror(client, state, overlap_s=2, full=True)

    assert result.fetched == 501
    assert state.mirror_size() == 500


def test_mirror_full_rescan_deletes_vanished_frames(
    sandbox: SandboxServer, state: StateStore
) -> None:
    """Frames in the mirror that Eyekiosk no longer lists are dropped by a complete full rescan."""
    from sync.state import MirrorRow

    token = _store(sandbox).mint_token(["frames:read"])
    with _client(sandbox, token) as client:
        refresh_mirror(client, state, overlap_s=2, full=True)
        watermark = state.frames_watermark()
        assert watermark is not None
        state.upsert_frames([MirrorRow("frm_gone", "GONE", None, None, 1, 100, "USD", watermark)])
        result = refresh_mirror(client, state, overlap_s=2, full=True)

    assert result.deleted == 1
    assert state.mirror_size() == 500
