"""The two stages a URL goes through, each in its own daemon threads.

Downloading is mostly waiting on the network: many threads (``--workers``). Decoding
and cropping is CPU work that PIL and OpenCV do outside the GIL: about one thread per
core (``--crop-workers``). A bounded queue between them holds downloaded bytes only,
so memory stays within a few images per crop thread, and a slow CPU never idles the
network nor a slow host the CPU. Finished URLs go to ``results`` as
("done", url, record); a crop that cannot be written or a bug as ("fatal", url, exc).
"""
import queue
import threading
import time

from fec.data.crop import crop_face

from . import outcomes as O
from .fetch import HostLimiter, Stopped, fetch
from .image import decode_image, encode_crop, make_face_check


class Pipeline:
    def __init__(self, opts, store, stop, results):
        self.opts, self.store, self.stop, self.results = opts, store, stop, results
        self.limiter = HostLimiter(opts.fetch.per_host)
        self.face_check = make_face_check(opts.face_check)
        self.tasks = queue.Queue()
        self.downloaded = queue.Queue(maxsize=2 * opts.crop_workers)
        self.downloads_done = threading.Event()
        self._lock = threading.Lock()
        self._downloading = 0
        self._threads = []

    def start(self, work):
        """``work``: (url, [(crop_id, box), ...]) in the order to fetch them."""
        for item in work:
            self.tasks.put(item)
        n_download = max(1, min(self.opts.workers, len(work)))
        n_crop = max(1, min(self.opts.crop_workers, len(work)))
        self._downloading = n_download
        self._threads = ([threading.Thread(target=self._download_loop, daemon=True, name=f"download-{i}")
                          for i in range(n_download)]
                         + [threading.Thread(target=self._crop_loop, daemon=True, name=f"crop-{i}")
                            for i in range(n_crop)])
        for t in self._threads:
            t.start()

    def alive(self):
        return any(t.is_alive() for t in self._threads)

    # -- download stage ----------------------------------------------------------------
    def _download_loop(self):
        try:
            while not self.stop.is_set():
                try:
                    url, faces = self.tasks.get_nowait()
                except queue.Empty:
                    return
                t0 = time.monotonic()
                try:
                    got = fetch(url, self.opts.fetch, self.limiter, self.stop)
                except Stopped:
                    return
                except Exception as e:  # noqa: BLE001 - a bug: stop the run and say where
                    self.results.put(("fatal", url, e))
                    return
                record = {"url": url, "outcome": got.outcome, "detail": got.detail, "transient": got.transient,
                          "attempts": got.attempts}
                if got.outcome != O.OK:
                    self._finish(url, record, t0)
                    continue
                while True:  # wait for room in the crop queue, giving way to a stop
                    try:
                        self.downloaded.put((url, faces, record, got.data, t0), timeout=0.2)
                        break
                    except queue.Full:
                        if self.stop.is_set():
                            return
        finally:
            with self._lock:
                self._downloading -= 1
                if self._downloading == 0:
                    self.downloads_done.set()

    def _finish(self, url, record, t0):
        record["seconds"] = round(time.monotonic() - t0, 3)
        self.results.put(("done", url, record))

    # -- crop stage --------------------------------------------------------------------
    def _crop_loop(self):
        while not self.stop.is_set():
            try:
                url, faces, record, data, t0 = self.downloaded.get(timeout=0.1)
            except queue.Empty:
                # Every put happens before downloads_done is set: empty now means done.
                if self.downloads_done.is_set() and self.downloaded.empty():
                    return
                continue
            try:
                self._crop(faces, record, data)
            except Stopped:
                return
            except Exception as e:  # noqa: BLE001 - a crop that cannot be written (disk full), or a bug
                self.results.put(("fatal", url, e))
                return
            self._finish(url, record, t0)

    def _crop(self, faces, record, data):
        """Decodes ``data``, writes a crop per face; fills in ``record``."""
        outcome, detail, rgb = decode_image(data, self.opts.max_pixels)
        if outcome != O.OK:
            record.update(outcome=outcome, detail=detail)
            return
        face_outcomes = {}
        for cid, box in faces:
            if self.stop.is_set():
                raise Stopped
            try:
                if self.face_check is not None and not self.face_check(crop_face(rgb, box, self.opts.size)):
                    face_outcomes[cid] = O.NO_FACE
                    continue
                crop = encode_crop(rgb, box, self.opts.size)
            except Exception as e:  # noqa: BLE001 - an odd image must not end a day-long run
                record.update(outcome=O.DECODE_ERROR, detail=f"crop: {type(e).__name__}: {e}"[:200])
                return
            self.store.publish(cid, crop)
            face_outcomes[cid] = O.OK
        record["faces"] = face_outcomes
