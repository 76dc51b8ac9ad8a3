"""Logging setup: one line per event, readable in journald, optionally as JSON."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

ROOT_LOGGER = "eyekiosk_sync"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
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
