"""Benchmarks: each scenario measures against a baseline in the same run; results in RESULTS.md."""
