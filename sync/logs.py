"""Logging setup: one line per event, readable in journald, optionally as JSON."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

ROOT_LOGGER = "eyekiosk_sync"


# "cycle.finished job=shop run=3": an event name, then key=value fields whose
# values run up to the next " key=" (so a value may contain spaces).
_EVENT = re.compile(r"^(?P<event>[a-z_]+(?:\.[a-z_]+)+)(?: (?P<fields>\w+=.*))?$", re.DOTALL)
_FIELD = re.compile(r"(\w+)=(.*?)(?= \w+=|$)", re.DOTALL)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, event and fields.

    Messages written as ``event.name key=value ...`` also get an ``event`` key
    and one key per field, so journald and log shippers can filter on them.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        matched = _EVENT.match(message)
        if matched:
            data["event"] = matched["event"]
            for key, value in _FIELD.findall(matched["fields"] or ""):
                data.setdefault(key, value)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send the project's logs to stderr, where systemd hands them to journald."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger(ROOT_LOGGER)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # httpx logs every request with its full URL at INFO; the client logs its own line.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(
        logging.WARNING if level != "DEBUG" else logging.DEBUG
    )


__all__ = ["JsonFormatter", "configure_logging"]
