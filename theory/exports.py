"""Lazy public surfaces for the package ``__init__`` files of ``theory``, ``numerics`` and ``verify``.

:func:`lazy_package` gives a package the PEP 562 module hooks ``__getattr__`` / ``__dir__``: its submodules
(``theory.diffeo``) and the public names of those submodules that the package re-exports (``numerics.deform``)
are imported on first access, so ``import numerics`` stays cheap (no numba, torch or matplotlib until a name is
used) and one module that fails to import does not break the others. ``from numerics import deform`` and
``from numerics import *`` work as with eager imports.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Iterable, Mapping

__all__ = ["lazy_package"]


def lazy_package(package: str, submodules: Iterable[str], names: Mapping[str, Iterable[str]]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """Return ``(__getattr__, __dir__, __all__)`` for ``package``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    submodules : iterable of str
        Submodule names exposed as attributes (``"diffeo"`` for ``theory.diffeo``).
    names : mapping
        ``{submodule: [name, ...]}``: names re-exported at package level from that submodule. A name may appear
        once only, and may not equal a submodule's name (``verify.measure`` stays the module).
    """
    subs = list(submodules)
    where: dict[str, str] = {}
    for mod, ns in names.items():
        if mod not in subs:
            raise ValueError(f"names: {mod!r} is not one of the submodules {subs}")
        for n in ns:
            if n in where or n in subs:
                raise ValueError(f"names: {n!r} is exported twice or is also a submodule name")
            where[n] = mod
    public = subs + list(where)

    def __getattr__(name: str):
        if name in subs:
            return importlib.import_module(f"{package}.{name}")
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
            setattr(sys.modules[package], name, value)  # later lookups skip this hook
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(public) | {"__all__", "__doc__", "__name__", "__path__", "__file__"})

    return __getattr__, __dir__, public
