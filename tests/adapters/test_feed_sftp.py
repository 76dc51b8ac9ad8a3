"""Tests of the supplier feed adapter over SFTP, against an asyncssh server on loopback."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncssh
import pytest

import adapters.supplier_feed as supplier_feed
from adapters import feed_formats
from adapters.base import KEY, PRICE_CENTS, QUANTITY, SourceContext, SourceResult, StockSource
from adapters.supplier_feed import SupplierFeedSource
from adapters.testing import (
    CONTRACT_SECRET,
    CONTRACT_SECRET_ENV,
    StockRow,
    StockSourceCase,
    StockSourceContract,
    build_source,
)
from sync.errors import SourceError
from tests.adapters.feed_servers import LOOPBACK, FeedSftpServer

USER = "supplier"
PASSWORD = "sftp-pa55word-value"
CSV = b"sku,qty,price\nS-1,4,19.90\nS-2,0,5.00\n"


@pytest.fixture
def sftp_root(tmp_path: Path) -> Path:
    root = tmp_path / "sftp-root"
    (root / "outgoing").mkdir(parents=True)
    (root / "outgoing" / "stock.csv").write_bytes(CSV)
    return root


@pytest.fixture
def server(sftp_root: Path) -> Iterator[FeedSftpServer]:
    with FeedSftpServer(sftp_root, username=USER, password=PASSWORD) as running:
        yield running


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEED_SFTP_PASSWORD", PASSWORD)


def known_hosts(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(line, encoding="utf-8")
    return path


def sftp_source(tmp_path: Path, server: FeedSftpServer, **sftp: Any) -> SupplierFeedSource:
    table: dict[str, Any] = {
        "host": LOOPBACK,
        "port": server.port,
        "username": USER,
        "path": "/outgoing/stock.csv",
        "password_env": "FEED_SFTP_PASSWORD",
        "known_hosts": "known_hosts",
        **sftp,
    }
    options = {
        "sftp": table,
        "format": "csv",
        "attempts": 1,
        "columns": {"key": "sku", "quantity": "qty", "price": "price"},
    }
    context = SourceContext(job="shop", config_dir=tmp_path, state_dir=tmp_path / "state")
    adapter = SupplierFeedSource.from_mapping(options, context=context)
    assert isinstance(adapter, SupplierFeedSource)
    return adapter


def by_key(result: SourceResult) -> dict[str, tuple[int, int]]:
    return {
        str(row[KEY]): (int(row[QUANTITY]), int(row[PRICE_CENTS]))
        for _, row in result.rows.iterrows()
    }


def test_sftp_known_host_reads(tmp_path: Path, server: FeedSftpServer) -> None:
    """With the server's key in known_hosts, the file is read over SFTP."""
    known_hosts(tmp_path, server.known_hosts_line())

    result = sftp_source(tmp_path, server).read()

    assert by_key(result) == {"S-1": (4, 1990), "S-2": (0, 500)}
    assert server.logins == 1


def test_sftp_unknown_host_key_rejected(tmp_path: Path, server: FeedSftpServer) -> None:
    """A host key missing from known_hosts raises an error that says how to add it."""
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    known_hosts(tmp_path, f"[{LOOPBACK}]:{server.port} {other}")

    with pytest.raises(SourceError, match=rf"not in .*known_hosts.*ssh-keyscan -p {server.port}"):
        sftp_source(tmp_path, server).read()
    assert server.logins == 0


def test_sftp_known_hosts_missing(tmp_path: Path, server: FeedSftpServer) -> None:
    """A missing known_hosts file raises an error before connecting."""
    with pytest.raises(SourceError, match=r"known_hosts file .* does not exist.*ssh-keyscan"):
        sftp_source(tmp_path, server).read()
    assert server.logins == 0


def test_sftp_insecure_skip_warns_each_read(
    tmp_path: Path, server: FeedSftpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """insecure_skip_host_key_check reads without known_hosts and warns on every read."""
    caplog.set_level(logging.WARNING, logger="eyekiosk_sync.adapters.feed")
    adapter = sftp_source(tmp_path, server, insecure_skip_host_key_check=True)

    adapter.read()
    adapter.read()

    warnings = [r for r in caplog.records if "feed.sftp_host_key_unchecked" in r.getMessage()]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING for r in warnings)


def test_sftp_unchanged_file_not_parsed(
    tmp_path: Path, server: FeedSftpServer, sftp_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same mtime and size reuse the cached result; a changed file is parsed again."""
    known_hosts(tmp_path, server.known_hosts_line())
    calls: list[Path] = []
    original = feed_formats.check_csv_complete

    def counted(path: Path, **options: Any) -> None:
        calls.append(path)
        original(path, **options)

    monkeypatch.setattr(supplier_feed, "check_csv_complete", counted)
    adapter = sftp_source(tmp_path, server)
    adapter.read()

    unchanged = adapter.read()
    remote = sftp_root / "outgoing" / "stock.csv"
    remote.write_bytes(CSV.replace(b"S-1,4", b"S-1,7"))
    os.utime(remote, (remote.stat().st_atime, remote.stat().st_mtime + 60))
    changed = adapter.read()

    assert len(calls) == 2
    assert by_key(unchanged)["S-1"] == (4, 1990)
    assert by_key(changed)["S-1"] == (7, 1990)


def test_sftp_wrong_password(tmp_path: Path, server: FeedSftpServer) -> None:
    """A rejected login names the user, never the password."""
    known_hosts(tmp_path, server.known_hosts_line())
    (tmp_path / "password").write_text("not-the-password", encoding="utf-8")

    with pytest.raises(SourceError, match=r"rejected the login of 'supplier'") as caught:
        sftp_source(tmp_path, server, password_env=None, password_file="password").read()
    assert "not-the-password" not in str(caught.value)


def test_sftp_missing_file(tmp_path: Path, server: FeedSftpServer) -> None:
    """A remote path that does not exist is named in the error."""
    known_hosts(tmp_path, server.known_hosts_line())

    with pytest.raises(SourceError, match=r"/outgoing/missing.csv was not found"):
        sftp_source(tmp_path, server, path="/outgoing/missing.csv").read()


def test_sftp_oversized_rejected(tmp_path: Path, server: FeedSftpServer) -> None:
    """A remote file over max_bytes is rejected from its size, before downloading."""
    known_hosts(tmp_path, server.known_hosts_line())
    adapter = sftp_source(tmp_path, server)
    adapter.options.max_bytes = 10

    with pytest.raises(SourceError, match=r"larger than max_bytes = 10 bytes"):
        adapter.read()


def test_sftp_total_timeout(tmp_path: Path, server: FeedSftpServer) -> None:
    """A transfer that outlasts total_timeout_s fails with an error naming the option."""
    known_hosts(tmp_path, server.known_hosts_line())
    adapter = sftp_source(tmp_path, server)
    adapter.options.total_timeout_s = 0.001
    adapter.options.attempts = 3

    with pytest.raises(SourceError, match=r"longer than total_timeout_s = 0.001 seconds"):
        adapter.read()


def test_sftp_describe_without_secret(tmp_path: Path, server: FeedSftpServer) -> None:
    """describe() names user, host, port and path, and not the password."""
    adapter = sftp_source(tmp_path, server)

    assert adapter.describe() == (
        f"feed sftp://{USER}@{LOOPBACK}:{server.port}/outgoing/stock.csv (csv)"
    )
    assert PASSWORD not in adapter.describe()


# Adapter contract -----------------------------------------------------------------


class SftpCsvCase(StockSourceCase):
    """A CSV feed over SFTP, logging in with the contract's secret as password."""

    def __init__(self, server: FeedSftpServer) -> None:
        self.server = server

    def make_source(self, tmp_path: Path, rows: Sequence[StockRow]) -> StockSource[Any]:
        lines = [
            f"{r.key},{r.quantity},{'' if r.price_cents is None else r.price_cents / 100}"
            for r in rows
        ]
        return self._source(tmp_path, lines)

    def make_source_with_bad_rows(
        self, tmp_path: Path, rows: Sequence[StockRow]
    ) -> StockSource[Any] | None:
        lines = [
            f"{r.key},{r.quantity},{'' if r.price_cents is None else r.price_cents / 100}"
            for r in rows
        ]
        return self._source(tmp_path, [*lines, "BAD-1,-1,1.00"])

    def _source(self, tmp_path: Path, lines: list[str]) -> StockSource[Any]:
        folder = self.server.root / tmp_path.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stock.csv").write_text(
            "sku,qty,price\n" + "".join(f"{line}\n" for line in lines)
        )
        (tmp_path / "known_hosts").write_text(self.server.known_hosts_line(), encoding="utf-8")
        options = {
            "sftp": {
                "host": LOOPBACK,
                "port": self.server.port,
                "username": USER,
                "path": f"/{tmp_path.name}/stock.csv",
                "password_env": CONTRACT_SECRET_ENV,
                "known_hosts": "known_hosts",
            },
            "format": "csv",
            "columns": {"key": "sku", "quantity": "qty", "price": "price"},
        }
        return build_source(SupplierFeedSource, options, tmp_path)


@pytest.fixture
def contract_server(tmp_path: Path) -> Iterator[FeedSftpServer]:
    root = tmp_path / "contract-root"
    root.mkdir()
    with FeedSftpServer(root, username=USER, password=CONTRACT_SECRET) as running:
        yield running


class TestSupplierFeedSftpContract(StockSourceContract):
    @pytest.fixture
    def stock_case(self, contract_server: FeedSftpServer) -> StockSourceCase:
        return SftpCsvCase(contract_server)
