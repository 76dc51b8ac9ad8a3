"""Tests of settings: TOML files written into tmp_path, environment overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.config import load_settings
from sync.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
JOB = """
[[jobs]]
name = "shop"

[[jobs.sources]]
adapter = "csv"
path = "stock.csv"
columns = { key = "Item Code", quantity = "On Hand" }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_example_file_is_valid() -> None:
    """The shipped config.example.toml loads without errors."""
    settings = load_settings(ROOT / "config.example.toml")

    assert settings.jobs[0].name == "main-store"
    assert settings.partner.base_url == "https://eyekiosk.online"


def test_config_environment_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An EYEKIOSK_SYNC_ variable wins over the TOML value and keeps its sibling keys."""
    path = _write(tmp_path, '[partner]\nbase_url = "http://127.0.0.1:9"\ntimeout_s = 5\n' + JOB)
    monkeypatch.setenv("EYEKIOSK_SYNC_PARTNER__TIMEOUT_S", "7.5")

    settings = load_settings(path)

    assert settings.partner.timeout_s == 7.5
    assert settings.partner.base_url == "http://127.0.0.1:9"


def test_config_relative_paths_resolve_against_file(tmp_path: Path) -> None:
    """The state folder and secret file resolve against the config file's folder."""
    (tmp_path / "secret").write_text("s3cret\n", encoding="utf-8")
    path = _write(tmp_path, '[state]\ndir = "state"\n[auth]\nclient_secret_file = "secret"\n' + JOB)

    settings = load_settings(path)

    assert settings.state.dir == tmp_path / "state"
    assert settings.auth.secret() == "s3cret"


def test_config_secret_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client secret can come from the environment."""
    monkeypatch.setenv("EYEKIOSK_SYNC_AUTH__CLIENT_SECRET", "from-env")

    settings = load_settings(_write(tmp_path, JOB))

    assert settings.auth.secret() == "from-env"
    assert "from-env" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            '[auth]\nclient_secret = "x"\n' + JOB,
            ["auth.client_secret", "EYEKIOSK_SYNC_AUTH__CLIENT_SECRET"],
        ),
        ("[partner]\ntimeout_s = -1\n" + JOB, ["partner.timeout_s", "greater than 0"]),
        ('[partner]\nbase_url = "ftp://x"\n' + JOB, ["partner.base_url", "not an http(s) URL"]),
        ("[partner]\ntimout_s = 3\n" + JOB, ["partner.timout_s", "Extra inputs"]),
        (JOB.replace('name = "shop"', 'name = "shop"\nmatch_on = "ean"'), ["jobs[0].match_on"]),
        (
            JOB.replace('name = "shop"', 'name = "shop"\ncron = "61 * * * *"'),
            ["jobs[0]", "cron '61 * * * *'"],
        ),
        (JOB + JOB, ["job names must be unique", "shop"]),
        ('[[jobs]]\nname = "x"\n', ["jobs[0].sources", "Field required"]),
        ("[partner\n", ["not valid TOML"]),
    ],
    ids=[
        "secret-in-toml",
        "negative-timeout",
        "bad-url",
        "typo",
        "bad-match",
        "bad-cron",
        "duplicate-job",
        "no-source",
        "syntax",
    ],
)
def test_config_invalid_values_name_key_path(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    """Each invalid setting is reported with its key path and the problem."""
    path = _write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_settings(path)

    for fragment in fragments:
        assert fragment in str(caught.value)


def test_config_missing_file_says_what_to_do(tmp_path: Path) -> None:
    """A missing config file names the path and points at the example."""
    with pytest.raises(ConfigError, match=r"not found; copy config.example.toml"):
        load_settings(tmp_path / "absent.toml")


def test_config_unparsable_environment_names_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list setting given as plain text in the environment explains that JSON is expected."""
    monkeypatch.setenv("EYEKIOSK_SYNC_AUTH__SCOPES", "frames:read")

    with pytest.raises(ConfigError, match="must be JSON"):
        load_settings(_write(tmp_path, JOB))


def test_config_invalid_environment_value_names_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An invalid value from the environment names the variable, not only the key path."""
    monkeypatch.setenv("EYEKIOSK_SYNC_PARTNER__CONCURRENCY", "abc")

    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, JOB))

    assert "partner.concurrency" in str(caught.value)
    assert "EYEKIOSK_SYNC_PARTNER__CONCURRENCY" in str(caught.value)


def _commented_blocks(text: str, opener: str) -> list[str]:
    """Return the commented-out TOML blocks of the example that start with ``opener``."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith(f"# {opener}"):
            current = []
            blocks.append(current)
        if current is None:
            continue
        if not line.startswith("#") or line.startswith("# ---"):
            current = None
            continue
        current.append(line[2:] if line.startswith("# ") else line[1:])
    return ["\n".join(block) for block in blocks]


def test_config_example_commented_sources_validate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every commented-out source example in config.example.toml has valid options."""
    from sync.sources import build_source

    monkeypatch.setenv("DOLIBARR_DB_PASSWORD", "x")
    monkeypatch.setenv("SUPPLIER_TOKEN", "x")
    monkeypatch.setenv("SUPPLIER_SFTP_PASSWORD", "x")
    blocks = _commented_blocks((ROOT / "config.example.toml").read_text(), "[[jobs.sources]]")

    assert len(blocks) == 5
    for block in blocks:
        path = _write(tmp_path, '[[jobs]]\nname = "shop"\n' + block + "\n")
        settings = load_settings(path)
        adapter = build_source(settings, settings.jobs[0], 0)
        assert adapter.describe()


def test_config_example_commented_orders_validate(tmp_path: Path) -> None:
    """The commented-out [jobs.orders] example, with its sink and status source, is valid."""
    from sync.orders import open_sink, open_status_source
    from sync.sources import source_context

    text = (ROOT / "config.example.toml").read_text()
    (block,) = _commented_blocks(text, "[jobs.orders]")
    # The status source example is commented twice, as an option within the example.
    (status,) = _commented_blocks(block, "[jobs.orders.status_source]")
    path = _write(tmp_path, JOB + block + "\n" + status + "\n")
    settings = load_settings(path)
    job = settings.jobs[0]

    assert job.orders is not None
    assert job.orders.status_source is not None
    context = source_context(settings, job)
    assert open_sink(job.orders.sink, job=job.name, context=context).describe()
    status = open_status_source(job.orders.status_source, job=job.name, context=context)
    assert status.describe()
