"""Atomic file writes: a crash or a full disk never leaves half a config behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, text: str, *, secret: bool = False) -> None:
    """Write ``text`` to a temp file beside ``path``, fsync, then rename over it.

    ``secret`` files (holding a literal key) get mode 0600; otherwise an existing
    file keeps its mode.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    mode = 0o600 if secret else (path.stat().st_mode & 0o777 if path.exists() else 0o644)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
