"""eyekiosk-sync: keep a practice's frame inventory in sync with the Eyekiosk Partner API."""

__version__ = "0.1.0"

__all__ = ["__version__"]
