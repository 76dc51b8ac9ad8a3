"""Benchmarks of whole sync cycles against the local sandbox; run ``python -m benchmarks.cycle``."""
