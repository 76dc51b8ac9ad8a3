"""Local stand-in for the Eyekiosk Partner API, used by tests, the demo and benchmarks.

`SandboxServer` serves it on a free loopback port in a background thread; `serve`
runs it in the foreground for `eyekiosk-sync sandbox`. See `admin.py` for the
`/_sandbox/` test endpoints and `store.py` for the same operations in Python.
"""

from sync.sandbox.server import SandboxServer, serve
from sync.sandbox.store import SandboxOptions, SandboxStore

__all__ = ["SandboxOptions", "SandboxServer", "SandboxStore", "serve"]
