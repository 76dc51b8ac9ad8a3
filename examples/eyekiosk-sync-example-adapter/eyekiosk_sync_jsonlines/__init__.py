"""Example eyekiosk-sync plugin with one stock source, alias ``jsonlines``."""

from eyekiosk_sync_jsonlines.adapter import JsonLinesOptions, JsonLinesSource

__all__ = ["JsonLinesOptions", "JsonLinesSource"]
