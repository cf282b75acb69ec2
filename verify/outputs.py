"""Output folders and result files of the command-line tools.

One implementation for every CLI (``verify.compare``, ``verify.spherical``, ``verify.measure``) and for the job
executor:

* :func:`prepare_out_dir` validates ``--out`` *before* any work: it creates the folder, refuses a path that is a
  file, and proves the folder writable by creating and removing a probe file. A failure is a
  :class:`verify.specs.SpecError` carrying the flag, which the CLIs turn into exit status 2.
* :func:`atomic_write_text` / :func:`atomic_write_json` write to a uniquely named temporary file in the same folder,
  ``fsync`` it and move it into place with :func:`os.replace`: a reader (or a concurrent writer) sees either the old
  file or the new one, never half of one. Two processes writing the same path concurrently each use their own
  temporary file, so the survivor is one whole document.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from verify.specs import SpecError

__all__ = ["prepare_out_dir", "atomic_write_text", "atomic_write_bytes", "atomic_write_json"]


def prepare_out_dir(path: Any, *, flag: str = "--out") -> Path:
    """Create (if needed) and check the output folder ``path``; return it as a :class:`~pathlib.Path`.

    Raises
    ------
    SpecError
        with ``.flag == flag`` when ``path`` is an existing file, cannot be created, or is not writable.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise SpecError(flag, f"expected a folder path, got {type(path).__name__}")
    p = Path(os.path.expanduser(os.fspath(path)))
    if p.exists() and not p.is_dir():
        raise SpecError(flag, f"{str(p)!r} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SpecError(flag, f"cannot write in {str(p)!r}: {exc.strerror or exc}") from None
    return p


def atomic_write_bytes(path: Any, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, :func:`os.replace`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_text(path: Any, text: str) -> Path:
    """Write the string ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Any, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as strict JSON (``allow_nan=False``: a NaN or infinity is a ``ValueError``, convert it to
    ``None`` first) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False))
