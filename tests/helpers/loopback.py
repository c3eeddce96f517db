"""A local HTTP server of photo files with the faults real image hosts show, for the
tests and the benchmark of the preparation tool (127.0.0.1 only, port chosen by the OS).

    with LoopbackImageServer(photo_dir, latency=0.1) as server:
        server.url("a.jpg")            # http://127.0.0.1:PORT/photos/a.jpg
        server.url("a.jpg", "404")     # http://127.0.0.1:PORT/fault/404/a.jpg

Faults (``FAULTS``): 404; flaky (500 for the first ``flaky_failures`` requests, then
the photo); stall (half the body, then silence for ``stall`` seconds); drip (a byte
every ``drip`` seconds); truncated (half the photo, honestly announced); html (a page
as text/html); html-as-jpeg (a page announced as image/jpeg); huge (``huge_bytes``
announced and sent); huge-stream (the same without Content-Length); loop (a redirect
to itself); redirect (a redirect to the photo); bomb (a small PNG that decodes to
``bomb_side``² pixels). ``hang_url`` accepts the connection and never answers;
``refused_url`` names a port nobody listens on.
"""
import socket
import struct
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FAULTS = ("404", "flaky", "stall", "drip", "truncated", "html", "html-as-jpeg", "huge", "huge-stream", "loop",
          "redirect", "bomb")
_HTML = b"<!DOCTYPE html><html><head><title>Photo not found</title></head><body>Gone.</body></html>\n"


def bomb_png(side):
    """A 1-bit greyscale PNG of side×side pixels, all black: a few KB per 10⁸ pixels."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


class _Handler(BaseHTTPRequestHandler):
    server_version = "loopback"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        srv = self.server.owner
        path = self.path.split("?", 1)[0]
        srv.count(path)
        try:
            parts = path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == "photos":
                self._photo(srv, parts[1])
            elif len(parts) == 3 and parts[0] == "fault" and parts[1] in FAULTS:
                self._fault(srv, parts[1], parts[2], path)
            else:
                self._send(404, b"no such path\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what a timeout or a size cap does

    def _send(self, status, body, ctype, length=None, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length is not False:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _photo(self, srv, name):
        data = srv.photo(name)
        if data is None:
            return self._send(404, b"not found\n", "text/plain")
        if srv.latency:
            # counted while the client waits, before it has its answer (and can send the next)
            srv.in_flight(+1)
            srv.closing.wait(srv.latency)
            srv.in_flight(-1)
        self._send(200, data, "image/jpeg")

    def _fault(self, srv, kind, name, path):
        data = srv.photo(name) or b""
        if kind == "404":
            self._send(404, _HTML, "text/html")
        elif kind == "flaky":
            if srv.requests[path] <= srv.flaky_failures:
                self._send(500, b"try later\n", "text/plain")
            else:
                self._send(200, data, "image/jpeg")
        elif kind in ("stall", "drip"):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if kind == "stall":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                srv.closing.wait(srv.stall)
                self.wfile.write(data[len(data) // 2:])
            else:
                for i in range(len(data)):
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                    if srv.closing.wait(srv.drip):
                        return
        elif kind == "truncated":
            self._send(200, data[: len(data) // 2], "image/jpeg")
        elif kind == "html":
            self._send(200, _HTML, "text/html; charset=utf-8")
        elif kind == "html-as-jpeg":
            self._send(200, _HTML, "image/jpeg")
        elif kind in ("huge", "huge-stream"):
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            if kind == "huge":
                self.send_header("Content-Length", str(srv.huge_bytes))
            self.end_headers()
            block = (data or b"\xff") * (65536 // max(1, len(data)) + 1)
            sent = 0
            while sent < srv.huge_bytes and not srv.closing.is_set():
                piece = block[: min(len(block), srv.huge_bytes - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        elif kind == "loop":
            self._send(302, b"", "text/plain", headers=[("Location", path)])
        elif kind == "redirect":
            self._send(302, b"", "text/plain", headers=[("Location", f"/photos/{name}")])
        elif kind == "bomb":
            self._send(200, srv.bomb(), "image/png")


class LoopbackImageServer:
    def __init__(self, photo_dir, latency=0.0, flaky_failures=1, stall=30.0, drip=0.2,
                 huge_bytes=8 * 2**20, bomb_side=12000):
        self.photo_dir = Path(photo_dir)
        self.latency, self.flaky_failures, self.stall, self.drip = latency, flaky_failures, stall, drip
        self.huge_bytes, self.bomb_side = huge_bytes, bomb_side
        self.requests = Counter()
        # photo requests waiting out ``latency`` now, and the most at any one time (what the
        # client's per-host limit bounds)
        self.active, self.peak_active = 0, 0
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._bomb = None
        self._held = []

    # -- server side -------------------------------------------------------------------
    def count(self, path):
        with self._lock:
            self.requests[path] += 1

    def in_flight(self, change):
        with self._lock:
            self.active += change
            self.peak_active = max(self.peak_active, self.active)

    def photo(self, name):
        path = self.photo_dir / name
        if "/" in name or name.startswith(".") or not path.is_file():
            return None
        return path.read_bytes()

    def bomb(self):
        with self._lock:
            if self._bomb is None:
                self._bomb = bomb_png(self.bomb_side)
            return self._bomb

    def _hold(self):
        # Accepts connections and never reads or writes: a host that does not answer.
        while not self.closing.is_set():
            try:
                conn, _ = self._hang.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._held.append(conn)

    # -- client side -------------------------------------------------------------------
    def start(self):
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.owner = self
        self.port = self._http.server_address[1]
        self._hang = socket.socket()
        self._hang.bind(("127.0.0.1", 0))
        self._hang.listen(64)
        self._hang.settimeout(0.2)
        self.hang_port = self._hang.getsockname()[1]
        with socket.socket() as s:  # a port just freed: nobody listens there
            s.bind(("127.0.0.1", 0))
            self.refused_port = s.getsockname()[1]
        self._threads = [threading.Thread(target=self._http.serve_forever, daemon=True),
                         threading.Thread(target=self._hold, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def url(self, name, fault=None):
        tail = f"photos/{name}" if fault is None else f"fault/{fault}/{name}"
        return f"http://127.0.0.1:{self.port}/{tail}"

    def hang_url(self, name):
        return f"http://127.0.0.1:{self.hang_port}/photos/{name}"

    def refused_url(self, name):
        return f"http://127.0.0.1:{self.refused_port}/photos/{name}"

    def close(self):
        self.closing.set()
        self._http.shutdown()
        self._http.server_close()
        self._hang.close()
        for conn in self._held:
            conn.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
