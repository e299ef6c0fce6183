"""Benchmarks; results are recorded in docs/PERFORMANCE.md."""
