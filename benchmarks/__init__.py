"""Benchmarks: `python -m benchmarks NAME` prints one JSON line with the ratio to the issue's baseline.

Each benchmark is a module `benchmarks/NAME.py` exposing `main(argv: list[str]) -> dict`;
the dispatcher prints the returned record as one JSON line.
"""
