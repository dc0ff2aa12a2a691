"""Benchmarks (`python -m bench`); never run by the test suite except at tiny scale."""
