"""Benchmarks (`make bench`): each `*_bench.py` module here has `run() -> dict` of figures."""
