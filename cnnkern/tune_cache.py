"""The on-disk autotune cache: readable JSON, shared by processes, never trusted blindly.

One file, ``autotune.json``, in ``$CNNKERN_CACHE_DIR`` (default: the user cache
directory, e.g. ``~/.cache/cnnkern``). Every entry's key names the library version
and the hash of the implementation sources, so an entry measured for other code is
never used; a file written by another cache format is ignored whole. A corrupted or
truncated file is ignored with a ``CacheWarning`` and rebuilt by the next write.
Writes merge with what is on disk and replace the file atomically (a temporary file
in the same directory, then ``os.replace``), under an advisory file lock where the
platform has one, so concurrent processes never leave a partial file.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

FORMAT = "cnnkern-autotune/1"
FILENAME = "autotune.json"


class CacheWarning(UserWarning):
    """The autotune cache could not be read or written; tuning goes on in memory."""


def default_dir() -> Path:
    env = os.environ.get("CNNKERN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "cnnkern" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "cnnkern"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnkern"


@contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock on ``path`` (fcntl), a no-op where there is none."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DiskCache:
    """Entries ``key -> record`` persisted in ``directory / autotune.json``."""

    def __init__(self, directory: Optional[Path]):
        self.directory = directory
        self._lock = threading.Lock()
        self._warned: set = set()

    @property
    def path(self) -> Optional[Path]:
        return None if self.directory is None else self.directory / FILENAME

    def _warn(self, what: str, exc: BaseException) -> None:
        if what not in self._warned:
            self._warned.add(what)
            warnings.warn(f"cnnkern autotune cache {self.path}: {what} ({exc}); "
                          f"continuing without it", CacheWarning, stacklevel=4)

    def _read(self) -> dict:
        path = self.path
        if path is None or not path.exists():
            return {}
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            self._warn("unreadable or truncated, ignored and rebuilt on the next write", exc)
            return {}
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or \
                not isinstance(doc.get("entries"), dict):
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            self._warn("not a cache of this format, ignored and rebuilt on the next write",
                       ValueError(f"format {found!r}, expected {FORMAT!r}"))
            return {}
        return {k: v for k, v in doc["entries"].items()
                if isinstance(v, dict) and isinstance(v.get("choice"), str)}

    def load(self, prefix: str) -> dict:
        """The entries whose key starts with ``prefix`` (this version and sources)."""
        with self._lock:
            return {k: v for k, v in self._read().items() if k.startswith(prefix)}

    def store(self, key: str, record: dict, prefix: str) -> None:
        """Add one entry; entries of other versions or sources are dropped."""
        if self.directory is None:
            return
        with self._lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                with _file_lock(self.directory / (FILENAME + ".lock")):
                    entries = {k: v for k, v in self._read().items() if k.startswith(prefix)}
                    entries[key] = record
                    doc = dict(format=FORMAT, entries=entries)
                    fd, tmp = tempfile.mkstemp(prefix=".autotune-", suffix=".json",
                                               dir=self.directory)
                    try:
                        with os.fdopen(fd, "w") as f:
                            json.dump(doc, f, indent=1, sort_keys=True)
                            f.write("\n")
                        os.replace(tmp, self.path)
                    except BaseException:
                        os.unlink(tmp)
                        raise
            except OSError as exc:
                self._warn("could not be written", exc)
