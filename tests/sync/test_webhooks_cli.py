"""The ``webhooks`` commands against the sandbox: create, list, enable, disable, delete."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync import cli
from sync.errors import StateError
from sync.models import WEBHOOK_EVENTS
from sync.sandbox import SandboxServer, SandboxStore
from sync.webhooks import WebhookReceiver, WebhookSecrets, WebhookSettings, secrets_path
from sync.webhooks_cli import main
from tests.sync.harness import Installation

WEBHOOK_SCOPES = ("frames:read", "inventory:write", "webhooks:read", "webhooks:write")
HOOK_URL = "http://127.0.0.1:9/eyekiosk/webhooks"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what configure_logging in main() does to shared loggers, for the tests after these."""
    names = ("eyekiosk_sync", "httpx", "apscheduler")
    saved = [
        (logger, logger.level, logger.propagate, list(logger.handlers))
        for logger in map(logging.getLogger, names)
    ]
    yield
    for logger, level, propagate, handlers in saved:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


@pytest.fixture
def shop(tmp_path: Path, sandbox: SandboxServer) -> Installation:
    return Installation.create(tmp_path, sandbox, scopes=WEBHOOK_SCOPES)


def _store(shop: Installation) -> SandboxStore:
    assert shop.sandbox.store is not None
    return shop.sandbox.store


def _secrets(shop: Installation) -> WebhookSecrets:
    return WebhookSecrets(secrets_path(shop.settings))


def _run(shop: Installation, *args: str) -> int:
    return main(["--config", str(shop.config_path), "--log-level", "DEBUG", *args])


def test_webhooks_create_stores_secret(
    shop: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """create subscribes to all four events and stores the secret 0600, printing only the id."""
    code = _run(shop, "create", "--url", HOOK_URL)
    out, err = capsys.readouterr()

    hooks = _store(shop).webhooks.list_subscriptions()
    stored = _secrets(shop).load()
    assert code == 0
    assert [hook["id"] for hook in hooks] == ["wh_00000001"]
    assert hooks[0]["events"] == list(WEBHOOK_EVENTS)
    assert hooks[0]["url"] == HOOK_URL
    assert list(stored) == ["wh_00000001"]
    assert stored["wh_00000001"].startswith("whsec_")
    assert _secrets(shop).path.stat().st_mode & 0o777 == 0o600
    assert "created webhook wh_00000001" in out
    assert stored["wh_00000001"] not in out
    assert stored["wh_00000001"] not in err


def test_webhooks_create_chosen_events(shop: Installation) -> None:
    """Repeated --event options subscribe to those events only, each once."""
    code = _run(
        shop, "create", "--url", HOOK_URL,
        "--event", "order.created", "--event", "inventory.updated", "--event", "order.created",
    )  # fmt: skip

    hooks = _store(shop).webhooks.list_subscriptions()
    assert code == 0
    assert hooks[0]["events"] == ["order.created", "inventory.updated"]


def test_webhooks_stored_secret_verifies_delivery(tmp_path: Path, shop: Installation) -> None:
    """The secret that create stores is the one the sandbox signs deliveries with."""
    triggered: list[str] = []

    def trigger(job_name: str) -> bool:
        triggered.append(job_name)
        return True

    receiver = WebhookReceiver(
        WebhookSettings(listen="127.0.0.1:0"),
        secrets=_secrets(shop),
        jobs=shop.settings.jobs,
        trigger=trigger,
    )
    receiver.start()
    try:
        assert _run(shop, "create", "--url", receiver.url, "--event", "inventory.updated") == 0
        store = _store(shop)
        store.set_frame(store.frame_ids_by_position([0])[0], quantity=30)
        assert store.wait_for_webhooks(10)
    finally:
        receiver.stop()

    assert [item.status_code for item in _store(shop).webhook_deliveries()] == [202]
    assert triggered == ["shop"]


def test_webhooks_create_rejects_plain_http(
    shop: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """An http:// URL to a host other than loopback is rejected before any call."""
    code = _run(shop, "create", "--url", "http://practice.example/eyekiosk/webhooks")
    err = capsys.readouterr().err

    assert code == 2
    assert "HTTPS only" in err
    assert _store(shop).webhooks.list_subscriptions() == []


def test_webhooks_create_undone_when_secret_not_stored(
    shop: Installation, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the secret cannot be stored, the new subscription is deleted again."""

    def fail(self: WebhookSecrets, webhook_id: str, secret: str) -> None:
        raise StateError(f"cannot write the webhook secrets file {self.path}: disk full")

    monkeypatch.setattr(WebhookSecrets, "add", fail)

    code = _run(shop, "create", "--url", HOOK_URL)
    err = capsys.readouterr().err

    assert code == 1
    assert "disk full" in err
    assert _store(shop).webhooks.list_subscriptions() == []


def test_webhooks_list_marks_stored_secrets(
    shop: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """list shows each subscription, whether its secret is stored, and stored secrets left over."""
    assert _run(shop, "create", "--url", HOOK_URL) == 0
    _store(shop).webhooks.create("http://127.0.0.1:9/other", ["order.created"])
    _secrets(shop).add("wh_00000099", "whsec_leftover")
    capsys.readouterr()

    code = _run(shop, "list")
    out = capsys.readouterr().out

    lines = out.splitlines()
    assert code == 0
    assert lines[0].split()[:4] == ["wh_00000001", "enabled", "secret", "stored"]
    assert "events: order.created, order.status_changed" in lines[1]
    assert "last delivery: never" in lines[2]
    assert lines[3].split()[:4] == ["wh_00000002", "enabled", "secret", "missing"]
    assert "wh_00000099" in lines[-1]
    assert "whsec_" not in out


def test_webhooks_list_json(shop: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    """list --json prints each subscription with secret_stored and no secret."""
    assert _run(shop, "create", "--url", HOOK_URL, "--event", "order.created") == 0
    capsys.readouterr()

    code = _run(shop, "list", "--json")
    out = capsys.readouterr().out

    rows = json.loads(out)
    assert code == 0
    assert rows == [
        {
            "id": "wh_00000001",
            "url": HOOK_URL,
            "events": ["order.created"],
            "enabled": True,
            "created_at": rows[0]["created_at"],
            "delivery_status": {
                "last_delivery_at": None,
                "last_status_code": None,
                "failed_deliveries": 0,
            },
            "secret_stored": True,
        }
    ]
    assert "whsec_" not in out


def test_webhooks_list_through_main_cli(
    shop: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eyekiosk-sync webhooks list` reaches the same command."""
    code = cli.main(["--config", str(shop.config_path), "webhooks", "list"])

    assert code == 0
    assert capsys.readouterr().out == "no webhook subscriptions\n"


def test_webhooks_enable_disable(shop: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    """disable and enable switch the subscription's enabled flag on Eyekiosk."""
    assert _run(shop, "create", "--url", HOOK_URL) == 0

    disabled = _run(shop, "disable", "wh_00000001")
    after_disable = _store(shop).webhooks.list_subscriptions()[0]["enabled"]
    enabled = _run(shop, "enable", "wh_00000001")
    after_enable = _store(shop).webhooks.list_subscriptions()[0]["enabled"]
    out = capsys.readouterr().out

    assert (disabled, enabled) == (0, 0)
    assert after_disable is False
    assert after_enable is True
    assert "webhook wh_00000001 is disabled" in out
    assert "webhook wh_00000001 is enabled" in out


def test_webhooks_delete_removes_secret(
    shop: Installation, capsys: pytest.CaptureFixture[str]
) -> None:
    """delete removes the subscription on Eyekiosk and its stored secret."""
    assert _run(shop, "create", "--url", HOOK_URL) == 0
    assert _run(shop, "create", "--url", HOOK_URL) == 0

    code = _run(shop, "delete", "wh_00000001")

    remaining = [hook["id"] for hook in _store(shop).webhooks.list_subscriptions()]
    assert code == 0
    assert remaining == ["wh_00000002"]
    assert list(_secrets(shop).load()) == ["wh_00000002"]
    assert "deleted webhook wh_00000001; its stored secret was removed" in capsys.readouterr().out


def test_webhooks_delete_unknown(shop: Installation, capsys: pytest.CaptureFixture[str]) -> None:
    """Deleting an id Eyekiosk does not know fails, unless a stored secret is left to remove."""
    _secrets(shop).add("wh_00000042", "whsec_leftover")

    leftover = _run(shop, "delete", "wh_00000042")
    leftover_out = capsys.readouterr().out
    unknown = _run(shop, "delete", "wh_00000043")
    unknown_err = capsys.readouterr().err

    assert leftover == 0
    assert "does not exist on Eyekiosk; its stored secret was removed" in leftover_out
    assert _secrets(shop).load() == {}
    assert unknown == 1
    assert "404" in unknown_err


@pytest.mark.parametrize(
    ("scopes", "args", "missing"),
    [
        (("frames:read", "webhooks:write"), ["list"], "webhooks:read"),
        (("frames:read", "webhooks:read"), ["create", "--url", HOOK_URL], "webhooks:write"),
        (("frames:read", "webhooks:read"), ["disable", "wh_00000001"], "webhooks:write"),
        (("frames:read", "webhooks:read"), ["delete", "wh_00000001"], "webhooks:write"),
    ],
    ids=["list", "create", "disable", "delete"],
)
def test_webhooks_missing_scope(
    shop: Installation,
    capsys: pytest.CaptureFixture[str],
    scopes: tuple[str, ...],
    args: list[str],
    missing: str,
) -> None:
    """A command whose scope was not granted fails before any call and names the scope."""
    shop.grant(scopes)
    requests_before = sum(_store(shop).request_counts().values())

    code = _run(shop, *args)
    err = capsys.readouterr().err

    assert code == 4
    assert f"'{missing}'" in err
    assert sum(_store(shop).request_counts().values()) == requests_before
    assert _store(shop).webhooks.list_subscriptions() == []
