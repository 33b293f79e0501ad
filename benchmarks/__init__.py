"""Benchmarks run by ``make bench`` (``python -m benchmarks``); results go to docs/benchmarks.md.

Each benchmark module owns one section of that file between its own markers, so the
runtime and operator benchmarks can be run and rewritten independently.
"""
