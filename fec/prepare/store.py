"""The prepared folder on disk:

    DIR/faceexp-comparison-data-{train,test}-public.csv   what the catalog reads
    DIR/images/<crop_id>.jpg      face crops, each written in .staging/ then renamed in
    DIR/journal.jsonl             finished URLs, in the order they finished (resume)
    DIR/outcomes.jsonl            per-URL outcomes, sorted by URL (complete runs)
    DIR/report.json               counts (complete runs only)
    DIR/prepare.json              the settings the crops were made with
    DIR/.staging/, DIR/.lock      work files
"""
import json
import os
import threading

from fec.utils.errors import UserError
from fec.utils.io import atomic_write

try:
    import fcntl
except ImportError:  # not on Windows: no lock, one run at a time is then up to the user
    fcntl = None


class OutputDir:
    def __init__(self, root):
        self.root = str(root)
        self.images = os.path.join(self.root, "images")
        self.staging = os.path.join(self.root, ".staging")
        self.journal = os.path.join(self.root, "journal.jsonl")
        self.outcomes = os.path.join(self.root, "outcomes.jsonl")
        self.report = os.path.join(self.root, "report.json")
        self.settings = os.path.join(self.root, "prepare.json")
        self._lock_file = None

    def open(self):
        """Creates the folders, takes the lock, clears what a killed run left staged."""
        os.makedirs(self.images, exist_ok=True)
        os.makedirs(self.staging, exist_ok=True)
        if fcntl is not None:
            self._lock_file = open(os.path.join(self.root, ".lock"), "a")
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._lock_file.close()
                self._lock_file = None
                raise UserError(f"{self.root} is being written by another prepare_fec.py; wait for it "
                                "or use another --out") from None
        for name in os.listdir(self.staging):
            os.remove(os.path.join(self.staging, name))
        return self

    def close(self):
        try:
            os.rmdir(self.staging)  # only when empty: a worker still writing keeps it
        except OSError:
            pass
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    def image_path(self, crop_id):
        return os.path.join(self.images, crop_id + ".jpg")

    def present_crops(self):
        """Crop ids with an image, from one listing of the folder."""
        with os.scandir(self.images) as entries:
            return {e.name[:-4] for e in entries if e.name.endswith(".jpg")}

    def publish(self, crop_id, data):
        """Writes a crop in .staging/ (synced), then renames it into images/: a reader,
        or a run killed at any point, sees the whole file or none."""
        tmp = os.path.join(self.staging, f"{crop_id}.{os.getpid()}.{threading.get_ident()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.image_path(crop_id))
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def write_text(self, path, text):
        atomic_write(path, text)

    def read_settings(self):
        if not os.path.exists(self.settings):
            return None
        with open(self.settings, encoding="utf-8") as f:
            return json.load(f)

    def write_settings(self, settings):
        atomic_write(self.settings, json.dumps(settings, indent=2, sort_keys=True) + "\n")

    def remove_results(self):
        """report.json and outcomes.jsonl describe complete runs only: a run with work
        left removes them until it completes."""
        for path in (self.report, self.outcomes):
            if os.path.exists(path):
                os.remove(path)
