"""Tests of the command line, run in-process and as a subprocess against the sandbox."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sync.cli import main
from sync.sandbox import SandboxServer
from tests.sync.harness import Installation, read_export

REPORT_KEYS = {
    "source_rows",
    "rejected_rows",
    "unknown_keys",
    "changed",
    "batches",
    "requests",
    "duration_s",
}
INVENTORY = "POST /api/v1/partner/inventory"


@pytest.fixture
def installation(tmp_path: Path, sandbox: SandboxServer) -> Installation:
    return Installation.create(tmp_path, sandbox)


def test_cli_sync_json_report(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sync --json` prints one JSON object with the documented counts and exits 0."""
    code = main(["--config", str(installation.config_path), "sync", "--json"])

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert REPORT_KEYS <= set(report)
    assert report["changed"] == 25
    assert report["requests"][INVENTORY] == 1
    assert report["requests"]["GET /api/v1/partner/frames"] == 1


def test_cli_sync_dry_run_prints_plan(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sync --dry-run` lists each planned change with old and new values."""
    code = main(["--config", str(installation.config_path), "sync", "--dry-run"])

    output = capsys.readouterr().out
    assert code == 0
    assert "(dry run)" in output
    assert output.count(" -> ") >= 25
    assert "sent" not in output


def test_cli_sync_aborted_exit_code(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty export aborts the cycle with exit code 1 and reports that nothing was posted."""
    installation.write_rows([])

    code = main(["--config", str(installation.config_path), "sync"])

    assert code == 1
    assert "nothing was posted" in capsys.readouterr().out


def test_cli_sync_unknown_job(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """Naming a job that does not exist exits 2 and lists the configured jobs."""
    code = main(["--config", str(installation.config_path), "sync", "--job", "nope"])

    assert code == 2
    assert "configured jobs: shop" in capsys.readouterr().err


def test_cli_check_config_reports_adapter_option_paths(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config names the key path of an invalid adapter option and exits 2."""
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace('delimiter = ","', "").replace(
            'path = "stock.csv"', 'path = "stock.csv"\ndelimeter = ";"'
        ),
        encoding="utf-8",
    )

    code = main(["--config", str(installation.config_path), "check-config"])

    output = capsys.readouterr().out
    assert code == 2
    assert "jobs.shop.sources[0].delimeter" in output


def test_cli_status_lists_runs(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` shows the recorded runs with outcome and counts."""
    main(["--config", str(installation.config_path), "sync"])
    capsys.readouterr()

    code = main(["--config", str(installation.config_path), "status", "--json"])

    status = json.loads(capsys.readouterr().out)
    assert code == 0
    assert status["runs"][0]["outcome"] == "success"
    assert status["runs"][0]["counts"]["changed"] == 25
    assert status["batches"] == {"confirmed": 1}


def test_cli_auth_status_never_prints_token(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`auth status` shows client and scopes but no token."""
    token = json.loads(
        (installation.settings.state.dir / "tokens.json").read_text(encoding="utf-8")
    )

    code = main(["--config", str(installation.config_path), "auth", "status"])

    output = capsys.readouterr().out
    assert code == 0
    assert "sandbox-client" in output
    assert "inventory:write" in output
    assert token["access_token"] not in output


def test_cli_adapters_list(capsys: pytest.CaptureFixture[str]) -> None:
    """`adapters list` shows the CSV adapter with its package and version."""
    code = main(["adapters", "list"])

    output = capsys.readouterr().out
    assert code == 0
    assert "csv" in output
    assert "eyekiosk-sync" in output


def test_cli_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's first cycle sends ceil(changed/100) inventory requests and its second none."""
    code = main(["demo", "--json"])

    first, second = json.loads(capsys.readouterr().out)
    assert code == 0
    assert first["changed"] > 0
    assert first["requests"][INVENTORY] == math.ceil(first["changed"] / 100)
    assert second["changed"] == 0
    assert INVENTORY not in second["requests"]


def test_cli_auth_login_no_browser(tmp_path: Path, sandbox: SandboxServer) -> None:
    """`auth login --no-browser` prints a URL and accepts the pasted redirect URL."""
    installation = Installation.create(tmp_path, sandbox)
    (installation.settings.state.dir / "tokens.json").unlink()
    assert sandbox.store is not None
    sandbox.store.set_auto_consent(True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sync.cli",
            "--config",
            str(installation.config_path),
            "auth",
            "login",
            "--no-browser",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        url = _read_authorization_url(process.stdout)
        # Stand in for the operator's browser on another device: consent, then copy the final URL.
        redirect = httpx.get(url, follow_redirects=False).headers["location"]
        stdout, stderr = process.communicate(redirect + "\n", timeout=30)
    finally:
        process.kill()

    assert process.returncode == 0, stderr
    assert "logged in as client sandbox-client" in stdout
    token = json.loads(
        (installation.settings.state.dir / "tokens.json").read_text(encoding="utf-8")
    )
    assert token["refresh_token"]
    assert token["access_token"] not in stdout + stderr


def _read_authorization_url(stream: object) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        text = line.strip()
        if text.startswith("http") and "/oauth/authorize?" in text:
            return str(text)
    raise AssertionError("the authorization URL was not printed")


def test_cli_sync_invalid_source_option_exit_2(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown source option exits 2 with its key path and without echoing its value."""
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace('path = "stock.csv"', 'path = "stock.csv"\napi_key = "SECRET-VALUE-1"'),
        encoding="utf-8",
    )

    code = main(["--config", str(installation.config_path), "sync", "--json"])

    captured = capsys.readouterr()
    assert code == 2
    assert "jobs.shop.sources[0].api_key" in captured.err
    assert "SECRET-VALUE-1" not in captured.err + captured.out


def test_cli_dry_run_lists_unmatched_and_ambiguous_keys(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run lists source keys with no frame and keys shared by several frames."""
    store = installation.sandbox.store
    assert store is not None
    rows = read_export()
    twin = store.find_frame(rows[1]["Item Code"])
    assert twin is not None
    store.set_frame(twin["id"], sku=rows[0]["Item Code"])
    rows.append(dict(rows[5], **{"Item Code": "NO-SUCH-FRAME"}))
    installation.write_rows(rows)

    code = main(["--config", str(installation.config_path), "sync", "--dry-run"])

    output = capsys.readouterr().out
    assert code == 0
    assert "source keys that match no frame (2):" in output
    assert "    NO-SUCH-FRAME" in output
    assert f"    {rows[1]['Item Code']}" in output
    assert "keys that match several frames (1):" in output
    assert f"    {rows[0]['Item Code']}" in output


def test_cli_missing_scope_exit_4(
    tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A grant without inventory:write exits 4 and names the scope; check-config reports it too."""
    installation = Installation.create(tmp_path, sandbox, scopes=("frames:read",))

    code = main(["--config", str(installation.config_path), "sync"])
    error = capsys.readouterr().err
    checked = main(["--config", str(installation.config_path), "check-config"])
    report = capsys.readouterr().out

    assert code == 4
    assert "inventory:write" in error
    assert checked == 2
    assert "the stored grant lacks 'inventory:write'" in report


def test_cli_check_config_notes_missing_export(
    installation: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source file that does not exist yet is a note in check-config, not an error."""
    installation.export_path.unlink()

    code = main(["--config", str(installation.config_path), "check-config"])

    output = capsys.readouterr().out
    assert code == 0
    assert f"note: job shop: {installation.export_path} does not exist yet" in output
