"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import contextlib
import os
import shutil


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary name beside ``path`` to write to; on success it is renamed to
    ``path``, on any error (or an interrupt) it is removed."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write(path, data):
    """Write ``data`` (bytes or str) to ``path`` atomically, synced to disk."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())


def atomic_copy(src, dst):
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
