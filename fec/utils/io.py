"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import os


def atomic_write(path, data):
    """Write ``data`` (bytes or str) to a temporary file beside ``path``, then rename."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
