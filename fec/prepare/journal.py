"""The journal of finished URLs: one JSON record a line, appended and synced one by one.

A process killed mid-write leaves at most a torn last line; reading drops it and cuts
the file back to its last complete line, so the next append starts on a clean line.
When a URL appears more than once (a retried failure), its last record counts.
"""
import json
import os

from fec.utils.errors import InputError
from fec.utils.io import atomic_write


class Journal:
    def __init__(self, path):
        self.path = str(path)
        self._file = None

    def load(self):
        """{url: record} of the records on disk (last one wins); repairs a torn tail."""
        records = {}
        if not os.path.exists(self.path):
            return records
        with open(self.path, "rb") as f:
            data = f.read()
        good_end = 0  # byte offset just after the last complete, parsable line
        start = 0
        lineno = 0
        while start < len(data):
            end = data.find(b"\n", start)
            lineno += 1
            if end < 0:  # no newline: the write of this line was cut short
                break
            line = data[start:end]
            if line.strip():
                try:
                    record = json.loads(line)
                    url = record["url"]
                except (ValueError, KeyError, TypeError) as e:
                    if end + 1 >= len(data):  # a torn last line that happened to end in a newline
                        break
                    raise InputError(f"{self.path}, line {lineno}: not a journal record ({e}); remove that line "
                                     "to redo its URL") from None
                records[url] = record
            good_end = end + 1
            start = end + 1
        if good_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())
        return records

    def append(self, records):
        """Appends ``records`` (a list of dicts), then syncs once: a group commit."""
        if not records:
            return
        if self._file is None:
            self._file = open(self.path, "ab")
        self._file.write("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)
                         .encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def write_records(path, records):
    """A whole journal at once (merging shards), through a temporary file."""
    lines = [json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records]
    atomic_write(path, "".join(lines).encode("utf-8"))
