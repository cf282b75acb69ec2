"""The public surface (issue 16): each package exposes its submodules and the names users call, every public module
lists its names in ``__all__``, and the README's imports resolve."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import numerics
import theory
import verify

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (theory, numerics, verify)


def _public_modules():
    for pkg in PACKAGES:
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            leaf = info.name.rsplit(".", 1)[-1]
            if leaf.startswith("_") or info.name.startswith("verify.experiments"):
                continue  # private modules; verify.experiments: registry of experiment modules, own test
            yield info.name


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.__name__)
def test_package_surface_resolves(pkg):
    assert pkg.__all__ and len(set(pkg.__all__)) == len(pkg.__all__)
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None, name
    assert set(pkg.__all__) <= set(dir(pkg))
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        getattr(pkg, "no_such_name")


def test_submodules_are_attributes_and_names_are_the_modules_own():
    assert theory.diffeo is importlib.import_module("theory.diffeo")
    assert numerics.deform is importlib.import_module("numerics.diffeo").deform
    assert verify.measure is importlib.import_module("verify.measure")  # the module, not the function


@pytest.mark.parametrize("modname", sorted(_public_modules()))
def test_every_public_module_has_all(modname):
    mod = importlib.import_module(modname)
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{modname} has no __all__"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{modname}.__all__ lists undefined names {missing}"


def _readme_imports():
    text = (ROOT / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] in ("theory", "numerics", "verify"):
                for alias in node.names:
                    yield node.module, alias.name


@pytest.mark.parametrize("module, name", sorted(set(_readme_imports())))
def test_readme_imports_resolve(module, name):
    mod = importlib.import_module(module)
    assert hasattr(mod, name), f"README imports {name} from {module}"
    if not isinstance(getattr(mod, name), type(mod)):
        assert name in getattr(mod, "__all__", ()), f"{module}.__all__ does not list {name}"


def _project_sources():
    for top in ("theory", "numerics", "verify", "benchmarks"):
        yield from sorted((ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", list(_project_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_across_modules(path):
    """No module imports another module's _private names, or reaches them through a module alias."""
    tree = ast.parse(path.read_text())
    aliases, bad = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                "theory", "numerics", "verify", "benchmarks"):
            bad += [f"from {node.module} import {a.name}" for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")]
            aliases |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname for a in node.names
                        if a.asname and a.name.split(".")[0] in ("theory", "numerics", "verify", "benchmarks")}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            bad.append(f"{node.value.id}.{node.attr}")
    assert not bad, bad
