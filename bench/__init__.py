"""Benchmarks: `python -m bench` (see bench/README.md). Performance is measured here, never in tests."""
