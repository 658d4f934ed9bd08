"""Benchmarks against the local stack (`make infra`); results and how to run them: RESULTS.md."""
