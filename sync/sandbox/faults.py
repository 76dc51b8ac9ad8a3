"""Injected faults: the next N matching requests get a 429, a 5xx or added latency.

Rules apply in the order they were added; the first rule that matches a request
and has responses left takes it. Admin paths under `/_sandbox/` never match.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from sync.models import API_PREFIX

logger = logging.getLogger("sync.sandbox.faults")

FaultKind = Literal["rate_limit", "server_error", "latency"]
FAULT_KINDS = ("rate_limit", "server_error", "latency")
DEFAULT_FAULT_PATHS = (API_PREFIX,)
ADMIN_PREFIX = "/_sandbox"


@dataclass
class FaultRule:
    """One injected fault and how many more requests it takes.

    Attributes:
        kind: `rate_limit` (429 with Retry-After), `server_error` (status) or
            `latency` (the request waits latency_ms, then runs normally).
        remaining: requests this rule still takes.
        status: HTTP status of a `server_error`, 500 to 599.
        retry_after: seconds put in the Retry-After header of a `rate_limit`.
        latency_ms: added wait of a `latency` rule, in milliseconds.
        paths: path prefixes the rule matches.
        methods: HTTP methods the rule matches; empty matches every method.
    """

    kind: FaultKind
    remaining: int
    status: int = 503
    retry_after: int = 1
    latency_ms: int = 0
    paths: tuple[str, ...] = DEFAULT_FAULT_PATHS
    methods: frozenset[str] = field(default_factory=frozenset)

    def matches(self, method: str, path: str) -> bool:
        """Tell whether the rule applies to a request."""
        if path.startswith(ADMIN_PREFIX) or self.remaining <= 0:
            return False
        if self.methods and method.upper() not in self.methods:
            return False
        return any(path.startswith(prefix) for prefix in self.paths)

    def to_dict(self) -> dict[str, Any]:
        """Return the rule as JSON-ready values."""
        return {
            "kind": self.kind,
            "remaining": self.remaining,
            "status": self.status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "paths": list(self.paths),
            "methods": sorted(self.methods),
        }


def make_rule(
    kind: str,
    count: int = 1,
    *,
    status: int = 503,
    retry_after: int = 1,
    latency_ms: int = 0,
    paths: list[str] | tuple[str, ...] | None = None,
    methods: list[str] | tuple[str, ...] | None = None,
) -> FaultRule:
    """Build a validated fault rule.

    Raises:
        ValueError: kind is unknown, count is below 1, status is not 5xx, or
            retry_after or latency_ms is negative.
    """
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault kind {kind!r} is not one of {list(FAULT_KINDS)}")
    if count < 1:
        raise ValueError(f"fault count {count} must be at least 1")
    if kind == "server_error" and not 500 <= status <= 599:
        raise ValueError(f"server_error status {status} must be 500 to 599")
    if retry_after < 0 or latency_ms < 0:
        raise ValueError("retry_after and latency_ms must not be negative")
    return FaultRule(
        kind=kind,  # type: ignore[arg-type]  # checked against FAULT_KINDS above
        remaining=count,
        status=status,
        retry_after=retry_after,
        latency_ms=latency_ms,
        paths=tuple(paths) if paths else DEFAULT_FAULT_PATHS,
        methods=frozenset(method.upper() for method in methods or ()),
    )


class FaultInjector:
    """The list of fault rules, consumed one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        """Append a rule after the existing ones."""
        with self._lock:
            self._rules.append(rule)
        logger.info("sandbox.fault.added %s", rule.to_dict())

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        """Return the rules that still have requests left."""
        with self._lock:
            return [rule.to_dict() for rule in self._rules if rule.remaining > 0]

    def take(self, method: str, path: str) -> FaultRule | None:
        """Consume one request of the first matching rule and return the rule, or None."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.remaining -= 1
                    self._rules = [item for item in self._rules if item.remaining > 0]
                    return rule
        return None
