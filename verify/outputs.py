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
* :func:`finish_outputs` ends a run: it writes ``manifest.json`` (the tool, its configuration and the files this run
  wrote) and removes the files that an earlier run of the same tool listed in its manifest but this run did not
  write again (figures of experiments not rerun, ``spherical.json`` of a sweep not rerun), so a folder never mixes
  the results of two configurations. Files that no manifest lists (the user's own) are never touched; a folder
  holding another tool's manifest is refused up front by :func:`check_manifest` (a SpecError naming ``--out``).
* :class:`InterruptWatch` records whether Ctrl-C (SIGINT) arrived while a block ran, even when code inside the block
  caught the KeyboardInterrupt and carried on: a CLI then knows that a result may come from an unfinished training
  and must not get a verdict.
"""
from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

from verify.specs import SpecError

__all__ = ["prepare_out_dir", "atomic_write_text", "atomic_write_bytes", "atomic_write_json", "MANIFEST",
           "read_manifest", "check_manifest", "finish_outputs", "InterruptWatch", "folder_state", "written_since",
           "caused_by_interrupt"]

#: the file in which a run lists what it wrote in its output folder
MANIFEST = "manifest.json"


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


def read_manifest(out_dir: Any) -> dict | None:
    """The manifest of the last run in ``out_dir`` (``{"tool", "config", "files", "complete"}``), or None when there is
    none or it is unreadable (a folder written before manifests existed)."""
    try:
        m = json.loads((Path(out_dir) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or not isinstance(m.get("files"), list):
        return None
    return m


def check_manifest(out_dir: Any, tool: str, *, flag: str = "--out") -> dict | None:
    """Before any work: refuse (SpecError naming ``flag``) an output folder whose manifest says another tool wrote
    it; return the manifest of an earlier run of ``tool`` (None if there is none)."""
    m = read_manifest(out_dir)
    if m is not None and m.get("tool") != tool:
        raise SpecError(flag, f"{str(out_dir)!r} holds the outputs of {m.get('tool')!r} (see its {MANIFEST}); "
                              f"use another folder for {tool}")
    return m


def _inside(out_dir: Path, name: str) -> Path | None:
    """``out_dir / name`` when ``name`` is a plain relative path inside ``out_dir`` (a manifest is data: a name
    like ``../x`` or ``/etc/x`` is never followed)."""
    if not isinstance(name, str) or not name or os.path.isabs(name):
        return None
    p = (out_dir / name).resolve()
    try:
        p.relative_to(out_dir.resolve())
    except ValueError:
        return None
    return p


def finish_outputs(out_dir: Any, tool: str, config: dict, files: list[str], *, complete: bool = True) -> list[str]:
    """Write ``out_dir/manifest.json`` for this run and remove the stale files of the previous run of ``tool``: those
    its manifest lists that this run did not write (``files``, names relative to ``out_dir``). Returns the names of
    the removed files. ``complete=False`` (an interrupted run) is recorded in the manifest; stale files are removed
    all the same: what remains in the folder is what this run wrote."""
    out_dir = Path(out_dir)
    old = read_manifest(out_dir)
    keep = set(files) | {MANIFEST}
    removed = []
    if old is not None and old.get("tool") == tool:
        for name in old["files"]:
            if name in keep:
                continue
            p = _inside(out_dir, name)
            if p is not None and p.is_file():
                try:
                    p.unlink()
                    removed.append(name)
                except OSError:
                    pass
    atomic_write_json(out_dir / MANIFEST, {"tool": tool, "config": config, "files": sorted(set(files)),
                                           "complete": bool(complete)})
    return removed


class InterruptWatch:
    """``with InterruptWatch() as w: ...``: ``w.hit`` becomes True when SIGINT arrives inside the block. The signal
    still raises KeyboardInterrupt as usual (the previous handler runs); the watch only remembers it, so that a
    caller can tell that a block which returned normally was interrupted (code inside caught the exception, e.g. a
    training loop that stopped early and returned what it had). Outside the main thread (where Python cannot set
    signal handlers) ``hit`` stays False and nothing changes."""

    def __init__(self):
        self.hit = False
        self._old = None
        self._installed = False

    def _handler(self, signum, frame):
        old = self._old
        if old == signal.SIG_IGN:
            return
        self.hit = True
        if callable(old):
            old(signum, frame)
        else:
            raise KeyboardInterrupt

    def __enter__(self) -> "InterruptWatch":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._installed:
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.default_int_handler)
            self._installed = False
        if exc_type is KeyboardInterrupt:
            self.hit = True
        return False


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt or has one in its chain of causes. A SIGINT that arrives while compiled
    code (a numba kernel boxing its result) calls back into Python surfaces as a ``SystemError`` whose ``__cause__``
    is the KeyboardInterrupt; a training loop or a CLI turns that back into the interrupt it is."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def folder_state(out_dir: Any) -> dict[str, tuple]:
    """``{relative path: (mtime_ns, size, inode)}`` of the files under ``out_dir`` (for :func:`written_since`)."""
    out_dir = Path(out_dir)
    state = {}
    for root, _dirs, names in os.walk(out_dir):
        for n in names:
            p = Path(root) / n
            try:
                st = p.stat()
            except OSError:
                continue
            state[p.relative_to(out_dir).as_posix()] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return state


def written_since(out_dir: Any, before: dict[str, tuple]) -> list[str]:
    """The files under ``out_dir`` created or changed since ``before = folder_state(out_dir)`` (sorted)."""
    now = folder_state(out_dir)
    return sorted(k for k, v in now.items() if before.get(k) != v and not k.startswith(".") and
                  not Path(k).name.startswith(".") and k != MANIFEST)
