"""Writing a file so that a reader sees the old one or the whole new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def current_umask() -> int:
    """This process's umask, read without changing it where Linux allows (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on success it becomes ``path``, on failure it is removed.

    The caller writes the file at the yielded path (by name, or by opening it) and closes it before
    the block ends. The file is then fsync'd, given the mode `open` would give it (0o666 less the
    umask) and renamed onto ``path`` (the same
    folder, so the rename is atomic). ``overwrite=False`` refuses an existing ``path`` with a
    FileExistsError, raised after the write and leaving the existing file as it was. The folder must
    exist.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)  # the data reaches the disk before the name points at it
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it private; the user's umask decides
        if overwrite:
            os.replace(tmp, path)
        else:
            # A hard link never replaces an existing file, so two writers cannot clobber each other.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path}: exists; pass overwrite=True to replace it") from None
    finally:
        tmp.unlink(missing_ok=True)
