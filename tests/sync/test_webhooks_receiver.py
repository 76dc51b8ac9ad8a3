"""Tests of the webhook receiver over real HTTP on loopback, alone and inside the daemon."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.config import JobSettings, OrderSettings, SourceSettings, load_settings
from sync.engine import SyncEngine
from sync.errors import ConfigError, StateError
from sync.runtime import open_client, state_store
from sync.sandbox import SandboxServer
from sync.scheduler import Daemon
from sync.state import StateStore
from sync.webhooks import (
    WebhookReceiver,
    WebhookSecrets,
    WebhookSettings,
    jobs_for_event,
    parse_listen,
    secrets_path,
    sign,
)
from tests.sync.harness import Installation
from tests.sync.orders_harness import OrderInstallation

REPO = Path(__file__).resolve().parents[2]
SECRET = "whsec_test_secret_value_0123456789"
OTHER_SECRET = "whsec_rotated_secret_value_9876543210"
FAR_FUTURE_CRON = 'cron = "0 0 1 1 *"'
WEBHOOKS_LOGGER = "eyekiosk_sync.webhooks"
HEADER_FIELDS = {
    "X-Webhook-Id": "id",
    "X-Webhook-Event": "type",
    "X-Webhook-Timestamp": "created_at",
}

MakeReceiver = Callable[..., tuple[WebhookReceiver, list[str]]]


def _jobs() -> list[JobSettings]:
    """Return two jobs: ``stock`` pushes inventory only, ``shop`` also pulls orders."""
    source = SourceSettings(adapter="csv")
    sink = SourceSettings(adapter="folder")
    return [
        JobSettings(name="stock", sources=[source]),
        JobSettings(name="shop", sources=[source], orders=OrderSettings(sink=sink)),
    ]


@pytest.fixture
def make_receiver(tmp_path: Path) -> Iterator[MakeReceiver]:
    """Start receivers on a free loopback port with ``SECRET`` stored. All stop after the test.

    Each call returns the receiver and the list of job names its trigger was called with.
    """
    started: list[WebhookReceiver] = []

    def start(
        *,
        secrets: dict[str, str] | None = None,
        accept: bool = True,
        now: Callable[[], datetime] | None = None,
        **fields: Any,
    ) -> tuple[WebhookReceiver, list[str]]:
        store = WebhookSecrets(tmp_path / f"state{len(started)}" / "webhook_secrets.json")
        stored = {"wh_00000001": SECRET} if secrets is None else secrets
        for webhook_id, secret in stored.items():
            store.add(webhook_id, secret)
        triggered: list[str] = []

        def trigger(job_name: str) -> bool:
            triggered.append(job_name)
            return accept

        settings = WebhookSettings(listen="127.0.0.1:0", **fields)
        receiver = WebhookReceiver(settings, secrets=store, jobs=_jobs(), trigger=trigger, now=now)
        receiver.start()
        started.append(receiver)
        return receiver, triggered

    yield start
    for receiver in started:
        receiver.stop()


def _event(
    event_type: str = "order.created",
    event_id: str = "evt_00000001",
    created_at: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> bytes:
    moment = created_at or datetime.now(UTC)
    body = {
        "id": event_id,
        "type": event_type,
        "created_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": data if data is not None else {"order_id": "ord_00000042"},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _post(
    receiver: WebhookReceiver,
    body: bytes,
    *,
    secret: str | None = SECRET,
    headers: Mapping[str, str | bytes] | None = None,
) -> httpx.Response:
    """POST a delivery as Eyekiosk does: headers from the body, signed with ``secret``."""
    fields = json.loads(body) if body.startswith(b"{") else {}
    sent: dict[str, str | bytes] = {"Content-Type": "application/json"}
    for header, field in HEADER_FIELDS.items():
        if field in fields:
            sent[header] = fields[field]
    if secret is not None:
        sent["X-Webhook-Signature"] = sign(body, secret)
    sent.update(headers or {})
    encoded = {
        name.encode(): value if isinstance(value, bytes) else value.encode()
        for name, value in sent.items()
    }
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.post(receiver.url, content=body, headers=encoded)


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# Routing of events to jobs


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        ("inventory.updated", ["stock", "shop"]),
        ("order.created", ["shop"]),
        ("order.status_changed", ["shop"]),
        ("order.completed", ["shop"]),
        ("frame.deleted", []),
    ],
    ids=["inventory-all-jobs", "created-order-jobs", "status-order-jobs", "completed", "unknown"],
)
def test_jobs_for_event_mapping(event_type: str, expected: list[str]) -> None:
    """Inventory events concern every job, order events the jobs that pull orders."""
    assert jobs_for_event(event_type, _jobs()) == expected


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [("inventory.updated", ["stock", "shop"]), ("order.created", ["shop"]), ("frame.new", [])],
    ids=["inventory", "order", "unknown-event"],
)
def test_receiver_triggers_event_jobs(
    make_receiver: MakeReceiver, event_type: str, expected: list[str]
) -> None:
    """A valid delivery gets 202 and triggers the jobs that its event concerns."""
    receiver, triggered = make_receiver()

    response = _post(receiver, _event(event_type))

    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "jobs": expected}
    assert triggered == expected


def test_receiver_health(make_receiver: MakeReceiver) -> None:
    """GET {path}/health returns 200 for the reverse proxy."""
    receiver, _ = make_receiver()

    with httpx.Client(trust_env=False) as client:
        response = client.get(f"{receiver.url}/health")
        wrong_method = client.get(receiver.url)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert wrong_method.status_code == 405


def test_receiver_custom_path(make_receiver: MakeReceiver) -> None:
    """The receiver serves deliveries on the configured path only."""
    receiver, triggered = make_receiver(path="/hooks/eyekiosk/")

    response = _post(receiver, _event())
    with httpx.Client(trust_env=False) as client:
        default_path = client.post(receiver.url.replace("/hooks/eyekiosk", "/eyekiosk/webhooks"))

    assert receiver.url.endswith("/hooks/eyekiosk")
    assert response.status_code == 202
    assert default_path.status_code == 404
    assert triggered == ["shop"]


# Rejections


@pytest.mark.parametrize(
    ("secret", "headers", "reason"),
    [
        (None, {}, "missing_signature"),
        ("whsec_wrong", {}, "invalid_signature"),
        (SECRET, {"X-Webhook-Signature": "sha1=abc"}, "invalid_signature"),
        (SECRET, {"X-Webhook-Signature": "sha256=zz"}, "invalid_signature"),
        (SECRET, {"X-Webhook-Signature": "sha256=\u00e9".encode("latin-1")}, "invalid_signature"),
        (SECRET, {"X-Webhook-Signature": ""}, "missing_signature"),
    ],
    ids=["missing", "wrong-secret", "wrong-algorithm", "not-hex", "not-ascii", "empty"],
)
def test_receiver_bad_signature_rejected(
    make_receiver: MakeReceiver,
    caplog: pytest.LogCaptureFixture,
    secret: str | None,
    headers: dict[str, str | bytes],
    reason: str,
) -> None:
    """A missing or wrong signature gets 401, triggers nothing, and is logged without the body."""
    receiver, triggered = make_receiver()
    caplog.set_level(logging.DEBUG, logger=WEBHOOKS_LOGGER)
    body = _event(data={"order_id": "ord_secretive_77"})

    response = _post(receiver, body, secret=secret, headers=headers)

    assert response.status_code == 401
    assert response.json()["reason"] == reason
    assert triggered == []
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"reason={reason}" in warnings[0].getMessage()
    assert "id=evt_00000001" in warnings[0].getMessage()
    assert "ord_secretive_77" not in caplog.text
    assert SECRET not in caplog.text


def test_receiver_signature_over_raw_body(make_receiver: MakeReceiver) -> None:
    """A body changed after signing, even by whitespace only, is rejected."""
    receiver, triggered = make_receiver()
    body = _event()
    signature = sign(body, SECRET)

    response = _post(receiver, body + b" ", headers={"X-Webhook-Signature": signature})

    assert response.status_code == 401
    assert triggered == []


def test_receiver_repeated_id_triggers_once(make_receiver: MakeReceiver) -> None:
    """A delivery with an id seen before gets 200 and triggers nothing more."""
    receiver, triggered = make_receiver()
    body = _event("inventory.updated", event_id="evt_00000007")

    first = _post(receiver, body)
    second = _post(receiver, body)
    other = _post(receiver, _event("inventory.updated", event_id="evt_00000008"))

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {"status": "duplicate"}
    assert other.status_code == 202
    assert triggered == ["stock", "shop", "stock", "shop"]


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(minutes=-10), False),
        (timedelta(minutes=-4), True),
        (timedelta(minutes=10), False),
    ],
    ids=["ten-minutes-old", "four-minutes-old", "ten-minutes-ahead"],
)
def test_receiver_stale_timestamp_rejected(
    make_receiver: MakeReceiver, offset: timedelta, accepted: bool
) -> None:
    """A created_at further than max_age_s (300 s) from now, either way, is rejected as a replay."""
    receiver, triggered = make_receiver()

    response = _post(receiver, _event(created_at=datetime.now(UTC) + offset))

    if accepted:
        assert response.status_code == 202
        assert triggered == ["shop"]
    else:
        assert response.status_code == 400
        assert response.json()["reason"] == "stale_timestamp"
        assert triggered == []


def test_receiver_max_age_setting(make_receiver: MakeReceiver) -> None:
    """max_age_s sets the tolerance, measured with the receiver's clock."""
    now = datetime(2026, 12, 4, 19, 57, 7, tzinfo=UTC)
    receiver, triggered = make_receiver(max_age_s=30, now=lambda: now)

    late = _post(receiver, _event(event_id="evt_1", created_at=now - timedelta(seconds=31)))
    in_time = _post(receiver, _event(event_id="evt_2", created_at=now - timedelta(seconds=29)))

    assert late.status_code == 400
    assert in_time.status_code == 202
    assert triggered == ["shop"]


def test_receiver_oversized_body_413(make_receiver: MakeReceiver) -> None:
    """A body over max_body_bytes gets 413, with or without Content-Length, and triggers nothing."""
    receiver, triggered = make_receiver(max_body_bytes=4096)
    body = _event(data={"frame_ids": ["frm_00000001"] * 400})
    assert len(body) > 4096

    declared = _post(receiver, body)
    with httpx.Client(trust_env=False, timeout=5) as client:
        chunked = client.post(
            receiver.url,
            content=iter([body[:2000], body[2000:]]),
            headers={"X-Webhook-Signature": sign(body, SECRET)},
        )

    assert declared.status_code == 413
    assert chunked.status_code == 413
    assert "transfer-encoding" not in declared.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert triggered == []


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"not json", {}),
        (b"[1, 2]", {}),
        (json.dumps({"type": "order.created", "created_at": "2026-12-04T19:57:07Z"}).encode(), {}),
        (_event(created_at=None).replace(b'"created_at"', b'"created"'), {}),
        (_event(), {"X-Webhook-Id": "evt_99999999"}),
        (_event(), {"X-Webhook-Event": "inventory.updated"}),
        (_event(), {"X-Webhook-Timestamp": "2020-01-01T00:00:00Z"}),
        (_event(), {"X-Webhook-Timestamp": "yesterday"}),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-id",
        "no-created-at",
        "id-header-differs",
        "event-header-differs",
        "timestamp-header-differs",
        "timestamp-header-invalid",
    ],
)
def test_receiver_invalid_delivery_400(
    make_receiver: MakeReceiver, body: bytes, headers: dict[str, str]
) -> None:
    """A signed body that is not a delivery, or whose headers contradict it, gets 400."""
    receiver, triggered = make_receiver()

    response = _post(receiver, body, headers=headers)

    assert response.status_code == 400
    assert triggered == []


def test_receiver_daemon_stopping_503(make_receiver: MakeReceiver) -> None:
    """When the trigger cannot run any job (the daemon is stopping), the response is 503."""
    receiver, triggered = make_receiver(accept=False)

    response = _post(receiver, _event())

    assert response.status_code == 503
    assert triggered == ["shop"]


def test_receiver_rotated_secrets(make_receiver: MakeReceiver) -> None:
    """Any stored secret verifies, and a change of the secrets file applies without a restart."""
    receiver, triggered = make_receiver(
        secrets={"wh_00000001": SECRET, "wh_00000002": OTHER_SECRET}
    )

    old = _post(receiver, _event(event_id="evt_1"), secret=SECRET)
    new = _post(receiver, _event(event_id="evt_2"), secret=OTHER_SECRET)
    assert receiver.secrets.remove("wh_00000001")
    retired = _post(receiver, _event(event_id="evt_3"), secret=SECRET)
    still_new = _post(receiver, _event(event_id="evt_4"), secret=OTHER_SECRET)
    receiver.secrets.add("wh_00000003", "whsec_third")
    third = _post(receiver, _event(event_id="evt_5"), secret="whsec_third")

    assert [old.status_code, new.status_code] == [202, 202]
    assert retired.status_code == 401
    assert still_new.status_code == 202
    assert third.status_code == 202
    assert triggered == ["shop", "shop", "shop", "shop"]


def test_receiver_without_secrets_rejects(
    make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """With no stored secret the receiver starts, warns, and rejects every delivery."""
    caplog.set_level(logging.INFO, logger=WEBHOOKS_LOGGER)
    receiver, triggered = make_receiver(secrets={})

    response = _post(receiver, _event())

    assert response.status_code == 401
    assert triggered == []
    assert "webhook.no_secrets" in caplog.text


def test_receiver_logs_ids_only(
    make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Logs name the event type and delivery id, never data from the body or a secret."""
    caplog.set_level(logging.DEBUG)
    receiver, _ = make_receiver()
    body = _event("order.created", event_id="evt_00000031", data={"order_id": "ord_private_31"})

    _post(receiver, body)
    _post(receiver, body)
    _post(receiver, body, secret="whsec_wrong", headers={"X-Webhook-Id": "evt_00000031"})

    assert "webhook.accepted event=order.created id=evt_00000031 jobs=shop" in caplog.text
    assert "webhook.duplicate event=order.created id=evt_00000031" in caplog.text
    assert "ord_private_31" not in caplog.text
    assert SECRET not in caplog.text
    assert "whsec_wrong" not in caplog.text


def test_receiver_rejection_logs_rate_limited(
    make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Repeated rejections for one reason log one warning, but other reasons log theirs."""
    caplog.set_level(logging.WARNING, logger=WEBHOOKS_LOGGER)
    receiver, _ = make_receiver()

    for number in range(5):
        _post(receiver, _event(event_id=f"evt_{number}"), secret="whsec_wrong")
    _post(receiver, _event(created_at=datetime.now(UTC) - timedelta(hours=1)))

    messages = [record.getMessage() for record in caplog.records]
    assert sum("reason=invalid_signature" in message for message in messages) == 1
    assert sum("reason=stale_timestamp" in message for message in messages) == 1


def test_receiver_header_values_sanitised(
    make_receiver: MakeReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Unverified header values with other than id characters are logged as '-'."""
    caplog.set_level(logging.WARNING, logger=WEBHOOKS_LOGGER)
    receiver, _ = make_receiver()

    _post(
        receiver,
        _event(),
        secret=None,
        headers={"X-Webhook-Id": "evt_1 reason=forged", "X-Webhook-Event": "x" * 200},
    )

    message = caplog.records[0].getMessage()
    assert "event=- id=-" in message
    assert "forged" not in message


# Lifecycle and settings


def test_receiver_start_stop_pairing(tmp_path: Path) -> None:
    """Stopping before start, or starting twice, is an error. Stop releases the port."""
    store = WebhookSecrets(tmp_path / "webhook_secrets.json")
    receiver = WebhookReceiver(
        WebhookSettings(listen="127.0.0.1:0"), secrets=store, jobs=[], trigger=lambda _: True
    )
    with pytest.raises(RuntimeError):
        receiver.stop()
    receiver.start()
    port = int(receiver.url.split(":")[2].split("/")[0])
    with pytest.raises(RuntimeError):
        receiver.start()

    receiver.stop()

    with pytest.raises(RuntimeError):
        receiver.stop()
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_receiver_port_in_use(tmp_path: Path) -> None:
    """A listen address that is taken raises ConfigError naming webhooks.listen."""
    store = WebhookSecrets(tmp_path / "webhook_secrets.json")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        receiver = WebhookReceiver(
            WebhookSettings(listen=f"127.0.0.1:{port}"),
            secrets=store,
            jobs=[],
            trigger=lambda _: True,
        )
        with pytest.raises(ConfigError, match=r"webhooks\.listen"):
            receiver.start()


def test_receiver_broken_secrets_file(tmp_path: Path) -> None:
    """A secrets file that is not JSON stops the start, and the error quotes no content."""
    path = tmp_path / "webhook_secrets.json"
    path.write_text('{"wh_1": "whsec_half', encoding="utf-8")
    receiver = WebhookReceiver(
        WebhookSettings(listen="127.0.0.1:0"),
        secrets=WebhookSecrets(path),
        jobs=[],
        trigger=lambda _: True,
    )

    with pytest.raises(StateError) as raised:
        receiver.start()

    assert "whsec_half" not in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8780", ("127.0.0.1", 8780)),
        ("[::1]:8780", ("::1", 8780)),
        ("localhost:0", ("localhost", 0)),
        ("127.0.0.1", None),
        ("::1:8780", None),
        ("127.0.0.1:http", None),
        ("127.0.0.1:70000", None),
        ("[nothost]:1", None),
        (":8780", None),
    ],
    ids=["ipv4", "ipv6", "name", "no-port", "ipv6-no-brackets", "port-name", "port-range",
         "bad-ipv6", "no-host"],
)  # fmt: skip
def test_parse_listen_cases(text: str, expected: tuple[str, int] | None) -> None:
    """HOST:PORT and [IPv6]:PORT parse, and anything else raises ValueError."""
    if expected is None:
        with pytest.raises(ValueError):
            parse_listen(text)
    else:
        assert parse_listen(text) == expected


def test_webhook_settings_from_toml(tmp_path: Path) -> None:
    """The [webhooks] table is read from TOML, with defaults for what it leaves out."""
    config = tmp_path / "config.toml"
    config.write_text('[webhooks]\nlisten = "127.0.0.1:8780"\npath = "/hooks/"\n', "utf-8")

    settings = load_settings(config)

    assert settings.webhooks.listen == "127.0.0.1:8780"
    assert settings.webhooks.path == "/hooks"
    assert settings.webhooks.max_age_s == 300
    assert settings.webhooks.max_body_bytes == 65536
    assert settings.webhooks.address() == ("127.0.0.1", 8780)


def test_webhook_settings_default_off(tmp_path: Path) -> None:
    """Without a [webhooks] table, or with an empty listen, the receiver is off."""
    config = tmp_path / "config.toml"
    config.write_text("", "utf-8")
    empty = tmp_path / "empty.toml"
    empty.write_text('[webhooks]\nlisten = ""\n', "utf-8")

    assert load_settings(config).webhooks.listen is None
    assert load_settings(empty).webhooks.listen is None
    with pytest.raises(ConfigError, match=r"webhooks\.listen"):
        load_settings(config).webhooks.address()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('listen = "8780"', "webhooks.listen"),
        ('path = "hooks"', "webhooks.path"),
        ('path = "/hooks?x=1"', "webhooks.path"),
        ("max_age_s = 0", "webhooks.max_age_s"),
        ("max_body_bytes = 10", "webhooks.max_body_bytes"),
        ('secret_file = "x"', "webhooks.secret_file"),
    ],
    ids=["listen-no-host", "path-relative", "path-query", "max-age-zero", "body-tiny", "unknown"],
)
def test_webhook_settings_invalid(tmp_path: Path, table: str, key: str) -> None:
    """An invalid [webhooks] key is a ConfigError naming its key path."""
    config = tmp_path / "config.toml"
    config.write_text(f"[webhooks]\n{table}\n", "utf-8")

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(config)


def test_secrets_file_private_and_atomic(tmp_path: Path) -> None:
    """The secrets file is created with mode 0600 and leaves no temporary file behind."""
    store = WebhookSecrets(tmp_path / "state" / "webhook_secrets.json")

    store.add("wh_00000001", SECRET)
    store.add("wh_00000002", OTHER_SECRET)
    removed = store.remove("wh_00000001")
    removed_again = store.remove("wh_00000001")

    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.load() == {"wh_00000002": OTHER_SECRET}
    assert removed
    assert not removed_again
    assert sorted(os.listdir(store.path.parent)) == ["webhook_secrets.json"]


def test_secrets_file_mode_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A secrets file readable by others is still read, with a warning to chmod it."""
    store = WebhookSecrets(tmp_path / "webhook_secrets.json")
    store.add("wh_00000001", SECRET)
    store.path.chmod(0o644)
    caplog.set_level(logging.WARNING, logger=WEBHOOKS_LOGGER)

    assert store.load() == {"wh_00000001": SECRET}
    assert "chmod 600" in caplog.text


# The receiver inside the daemon, with the sandbox delivering


def _listen_on_free_port(installation: Installation) -> None:
    installation.append_config('\n[webhooks]\nlisten = "127.0.0.1:0"\n')


def _subscribe(
    sandbox: SandboxServer, installation: Installation, url: str, events: list[str]
) -> str:
    """Create a sandbox subscription to ``url`` and store its secret as `webhooks create` does."""
    assert sandbox.store is not None
    created = sandbox.store.webhooks.create(url, events)
    WebhookSecrets(secrets_path(installation.settings)).add(created["id"], created["secret"])
    return str(created["id"])


def _runs(installation: Installation) -> list[dict[str, Any]]:
    with StateStore(installation.settings.state.url()) as store:
        return store.recent_runs("shop", limit=100)


def test_daemon_runs_job_on_inventory_webhook(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A frame change on Eyekiosk runs a job scheduled for next January within seconds."""
    installation = Installation.create(tmp_path, sandbox, job_options=FAR_FUTURE_CRON)
    _listen_on_free_port(installation)
    settings = installation.settings
    assert sandbox.store is not None

    with state_store(settings) as store, open_client(settings) as client:
        daemon = Daemon(settings, SyncEngine(settings, client=client, store=store))
        daemon.start()
        try:
            assert daemon.receiver is not None
            _subscribe(sandbox, installation, daemon.receiver.url, ["inventory.updated"])
            frame = sandbox.store.frame_ids_by_position([0])[0]
            sandbox.store.set_frame(frame, quantity=40)

            assert sandbox.store.wait_for_webhooks(10)
            ran = _wait_until(lambda: any(run["finished_at"] for run in _runs(installation)), 15)
        finally:
            daemon.stop()

    deliveries = sandbox.store.webhook_deliveries()
    assert ran
    assert deliveries[0].event_type == "inventory.updated"
    assert deliveries[0].status_code == 202
    assert _runs(installation)[-1]["outcome"] == "success"


def test_daemon_pulls_order_on_sale_webhook(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A kiosk sale delivers order.created, and the order job pulls the order early."""
    installation = OrderInstallation.with_orders(tmp_path, sandbox)
    text = installation.config_path.read_text(encoding="utf-8")
    installation.config_path.write_text(
        text.replace('name = "shop"\n', f'name = "shop"\n{FAR_FUTURE_CRON}\n', 1), "utf-8"
    )
    _listen_on_free_port(installation)
    installation.grant((*installation.scopes, "frames:read", "inventory:write"))
    settings = installation.settings
    from sync.runtime import job_scopes

    with (
        state_store(settings) as store,
        open_client(settings, needed=job_scopes(settings, settings.jobs)) as client,
    ):
        daemon = Daemon(settings, SyncEngine(settings, client=client, store=store))
        daemon.start()
        try:
            assert daemon.receiver is not None
            _subscribe(sandbox, installation, daemon.receiver.url, ["order.created"])
            order_ids = installation.store.create_sales(1)

            delivered = _wait_until(
                lambda: order_ids[0] in installation.delivered_orders(), timeout=15
            )
        finally:
            daemon.stop()

    statuses = [delivery.status_code for delivery in installation.store.webhook_deliveries()]
    assert delivered
    assert statuses == [202]


def test_daemon_rejects_forged_delivery(tmp_path: Path, sandbox: SandboxServer) -> None:
    """A delivery signed with a secret the daemon does not hold runs no job."""
    installation = Installation.create(tmp_path, sandbox, job_options=FAR_FUTURE_CRON)
    _listen_on_free_port(installation)
    settings = installation.settings
    assert sandbox.store is not None

    with state_store(settings) as store, open_client(settings) as client:
        daemon = Daemon(settings, SyncEngine(settings, client=client, store=store))
        daemon.start()
        try:
            assert daemon.receiver is not None
            # Created on the sandbox, but its secret is never stored locally.
            sandbox.store.webhooks.create(daemon.receiver.url, ["inventory.updated"])
            frame = sandbox.store.frame_ids_by_position([0])[0]
            sandbox.store.set_frame(frame, quantity=41)
            assert sandbox.store.wait_for_webhooks(10)
            time.sleep(0.5)
        finally:
            daemon.stop()

    assert [item.status_code for item in sandbox.store.webhook_deliveries()] == [401]
    assert _runs(installation) == []


def test_run_command_serves_and_stops_on_sigterm(tmp_path: Path, sandbox: SandboxServer) -> None:
    """`eyekiosk-sync run` serves the receiver, and SIGTERM stops it, frees the port, exits 0."""
    installation = Installation.create(tmp_path, sandbox, job_options=FAR_FUTURE_CRON)
    _listen_on_free_port(installation)
    process = subprocess.Popen(
        [sys.executable, "-m", "sync.cli", "--config", str(installation.config_path), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    reader = threading.Thread(target=_copy_lines, args=(process.stderr, lines), daemon=True)
    reader.start()
    try:
        url = _receiver_url(lines, timeout=30)
        with httpx.Client(trust_env=False) as client:
            health = client.get(f"{url}/health")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
    reader.join(5)
    logged = []
    while not lines.empty():
        logged.append(lines.get())

    assert health.status_code == 200
    assert process.returncode == 0, "".join(logged)
    assert any("webhook.receiver.stopped" in line for line in logged)
    with pytest.raises(httpx.ConnectError), httpx.Client(trust_env=False) as client:
        client.get(f"{url}/health")


def _copy_lines(stream: Iterable[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _receiver_url(lines: queue.Queue[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if "webhook.receiver.started" in line:
            return line.split("url=")[1].split()[0]
    raise AssertionError("the receiver did not log its start:\n" + "".join(seen))
