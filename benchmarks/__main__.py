"""Dispatcher: `python -m benchmarks NAME [args...]` runs `benchmarks.NAME.main(args)`."""
from __future__ import annotations

import importlib
import json
import pkgutil
import sys

import benchmarks


def available() -> list[str]:
    """Names of the benchmark modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if not m.name.startswith("_"))


def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in {"-h", "--help"}:
        print(f"usage: python -m benchmarks NAME [args]; NAME in {names}")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"unknown benchmark {name!r}; available: {names}", file=sys.stderr)
        return 2
    record = importlib.import_module(f"benchmarks.{name}").main(rest)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
