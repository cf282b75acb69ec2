"""Argument checks and argument errors: the one validation module of ``theory``, ``numerics`` and ``verify``.

``numerics`` and ``verify`` may import ``theory``, not the reverse, so the rules live here.

Errors
------
Every check raises an :class:`ArgumentError` that names the offending argument in its message *and* carries the
name in ``.argument``, so that a command-line front end maps it to its flag (``--n-probe`` for ``n_probe``, see
:func:`flag_name`) without parsing the text:

* :class:`ArgumentValueError` (a :class:`ValueError`): the type is right, the value is outside the allowed range;
* :class:`ArgumentTypeError` (a :class:`TypeError`): the value is of the wrong type (a string for a number, a float
  for an integer, ``None``, a bool for a number). It is also a :class:`ValueError`, because every bad argument of
  the earlier releases raised ``ValueError``, and code that catches that must keep working.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "ArgumentError",
    "ArgumentValueError",
    "ArgumentTypeError",
    "flag_name",
    "check_flag",
    "check_int",
    "check_real",
    "check_choice",
    "check_memory",
    "memory_limit",
]

#: the fraction of the machine's physical memory one allocation may claim before :func:`check_memory` refuses it
MEMORY_FRACTION = 0.5


class ArgumentError(Exception):
    """Base of the argument errors: ``.argument`` is the name of the offending parameter, ``str(err)`` the full
    message (which names it too)."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument
        self.message = message


class ArgumentValueError(ArgumentError, ValueError):
    """An argument of the right type with a value outside the allowed range."""


class ArgumentTypeError(ArgumentError, TypeError, ValueError):
    """An argument of the wrong type (also a ``ValueError``, for callers of the earlier releases)."""


def flag_name(argument: str) -> str:
    """The command-line flag of a parameter: ``"n_probe"`` -> ``"--n-probe"`` (a flag is returned unchanged)."""
    return argument if argument.startswith("-") else "--" + argument.replace("_", "-")


def check_flag(name: str, value: Any) -> bool:
    """``value`` as a bool if it is ``True``/``False`` (Python or numpy), else an error naming ``name``; 0, 1,
    None and strings are refused (a flag given a number is a wrong call, not a truth value)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentTypeError(name, f"{name} must be True or False, got {value!r}")
    return bool(value)


def _range_text(low, high, low_inclusive: bool = True, high_inclusive: bool = True) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low}")
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high}")
    return " and ".join(parts)


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int if it is an integer (Python or numpy, not a bool) in ``[low, high]``.

    Raises
    ------
    ArgumentTypeError
        for a non-integer (``2.0``, ``"3"``, ``None``, ``True``).
    ArgumentValueError
        for an integer outside ``[low, high]`` (either bound may be ``None``).
    """
    rng = _range_text(low, high)
    want = f"an integer {rng}" if rng else "an integer"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ArgumentTypeError(name, f"{name} must be {want}, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ArgumentValueError(name, f"{name} must be {want}, got {v}")
    return v


def check_real(value: Any, name: str, low: float | None = None, low_inclusive: bool = True,
               high: float | None = None, high_inclusive: bool = True) -> float:
    """``value`` as a finite float (a Python or numpy real number or a 0-d array; not a bool) in the given range:
    ``>= low`` (``> low`` if not ``low_inclusive``) and ``<= high`` (``< high`` if not ``high_inclusive``).

    Raises
    ------
    ArgumentTypeError
        for a value that is not a real number (a string, ``None``, a bool, a complex number, an array of size > 1).
    ArgumentValueError
        for NaN, an infinity, or a value outside the range.
    """
    if isinstance(value, (bool, np.bool_, complex, np.complexfloating)) or isinstance(value, (str, bytes)):
        raise ArgumentTypeError(name, f"{name} must be a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ArgumentTypeError(name, f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ArgumentValueError(name, f"{name} must be finite, got {value!r}")
    if (low is not None and (v < low or (v == low and not low_inclusive))) or \
            (high is not None and (v > high or (v == high and not high_inclusive))):
        raise ArgumentValueError(name, f"{name} must be {_range_text(low, high, low_inclusive, high_inclusive)}, "
                                       f"got {value!r}")
    return v


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``, else an error naming ``name`` and the choices (a value of another
    type than every choice is an :class:`ArgumentTypeError`; bools never match the integers 0 and 1)."""
    types = {type(c) for c in choices}
    if isinstance(value, (bool, np.bool_)) and bool not in types:
        raise ArgumentTypeError(name, f"{name} must be one of {choices}, got {value!r}")
    try:
        ok = value in choices
    except (TypeError, ValueError, RuntimeError):  # unhashable, incomparable, an array or a tensor (ambiguous truth)
        ok = False
    if ok:
        return value
    if types and not any(isinstance(value, t) for t in types if t is not type(None)) and value is not None:
        raise ArgumentTypeError(name, f"{name} must be one of {choices}, got {value!r}")
    raise ArgumentValueError(name, f"{name} must be one of {choices}, got {value!r}")


def memory_limit() -> int:
    """The largest allocation :func:`check_memory` accepts, in bytes: :data:`MEMORY_FRACTION` of the physical memory
    (``os.sysconf``; of 16 GiB where it is unknown), and in a process with an address-space cap (``ulimit -v``,
    ``RLIMIT_AS``) at most that fraction of what the cap leaves."""
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 16 << 30
    limit = MEMORY_FRACTION * total
    try:
        import resource

        cap = resource.getrlimit(resource.RLIMIT_AS)[0]
        if cap != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as fh:
                used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limit = min(limit, MEMORY_FRACTION * max(cap - used, 0))
    except (ImportError, OSError, ValueError):  # pragma: no cover - not Linux
        pass
    return int(limit)


def check_memory(n_bytes: float, name: str, what: str) -> None:
    """Refuse up front (:class:`ArgumentValueError` naming ``name``, with the estimate) an allocation of ``n_bytes``
    (``what`` describes it) larger than :func:`memory_limit`, instead of a ``MemoryError`` deep inside numpy after
    minutes of work, or the machine swapping."""
    limit = memory_limit()
    if not n_bytes <= limit:
        raise ArgumentValueError(name, f"{name} is too large: {what} would need {n_bytes / 2**30:.3g} GiB, more than the "
                                       f"{limit / 2**30:.3g} GiB one call may claim "
                                       f"({MEMORY_FRACTION:.0%} of this machine's memory); use a smaller {name}")
