"""Files written whole or not at all, and mounted secrets read again whenever they change."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, content: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``content`` (file mode ``mode``): written to a temporary file in the
    same directory, flushed to disk, then renamed over ``path``, so a reader sees the old file
    or the new one and a failure leaves no partial file behind."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class WatchedFile:
    """A file (a mounted Secret) whose text is read again whenever the file changes: Kubernetes
    updates a mounted Secret in place, so a rotated value reaches the next reader without a
    restart. :meth:`read` raises OSError while the file is missing or empty (mid-update, not
    mounted yet); the caller decides whether an older value may serve meanwhile."""

    __slots__ = ("_path", "_seen", "_text")

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int, int] | None = None
        self._text = ""

    @property
    def path(self) -> Path:
        return self._path

    def read(self) -> str:
        """The file's text, stripped; read from disk only when its inode, mtime or size moved."""
        stat = self._path.stat()
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._seen:
            text = self._path.read_text().strip()
            if not text:
                raise OSError("the file is empty")
            self._text, self._seen = text, stamp
        return self._text
