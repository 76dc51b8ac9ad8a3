"""Tests of the JSON log format."""

from __future__ import annotations

import json
import logging

from sync.logs import JsonFormatter


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("eyekiosk_sync.engine", logging.INFO, __file__, 1, message, args, None)


def test_json_formatter_splits_event_fields() -> None:
    """An ``event key=value`` message becomes an event key and one key per field."""
    line = JsonFormatter().format(
        _record("source.read job=%s source=%s rows=%d", "shop", "csv file /tmp/a b.csv", 500)
    )

    data = json.loads(line)
    assert data["event"] == "source.read"
    assert data["job"] == "shop"
    assert data["source"] == "csv file /tmp/a b.csv"
    assert data["rows"] == "500"
    assert data["level"] == "INFO"


def test_json_formatter_plain_message_kept() -> None:
    """A message without an event name is kept whole and gets no event key."""
    data = json.loads(JsonFormatter().format(_record("signed in as client %s", "demo")))

    assert data["message"] == "signed in as client demo"
    assert "event" not in data


def test_json_formatter_fields_never_override_metadata() -> None:
    """A field named like a metadata key does not replace the record's own value."""
    data = json.loads(JsonFormatter().format(_record("job.skipped level=%s", "x")))

    assert data["level"] == "INFO"
