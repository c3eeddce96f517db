"""Download of one image URL over HTTP(S), bounded in every way a host can misbehave.

Connect and read timeouts plus a deadline for the whole download (a host that sends a
byte every few seconds never trips a read timeout), a size cap checked while
streaming, a redirect limit with loop detection, a limit on concurrent requests per
host, and retries with exponential backoff for transient failures only (timeouts,
resets, 408, 429, 5xx); a 404 or an HTML page is final at once.
"""
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

from . import outcomes as O

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
TRANSIENT_STATUSES = (408, 429, 500, 502, 503, 504)
# Percent-encode what http.client refuses (spaces, non-ASCII) but keep existing escapes.
_URL_SAFE = "/%:@!$&'()*+,;=~-._?#[]"
_CHUNK = 64 * 1024


class Stopped(Exception):
    """The run is stopping (Ctrl-C / SIGTERM): abandon this URL, record nothing."""


@dataclass
class FetchOptions:
    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # longest wait for any one read
    max_time: float = 60.0  # for one attempt, redirects included (checked between reads)
    max_bytes: int = 20 * 2**20
    max_redirects: int = 5
    retries: int = 2  # further attempts after a transient failure
    backoff: float = 1.0  # seconds before the first retry, doubled each time
    per_host: int = 8  # concurrent requests to one host
    user_agent: str = "Mozilla/5.0 (compatible; fec-prepare/0.1)"


@dataclass
class FetchResult:
    outcome: str
    detail: str = ""
    data: bytes = b""
    transient: bool = False  # worth trying again later (--retry-failed)
    attempts: int = 1


class HostLimiter:
    """At most ``limit`` requests in flight per host; waiting gives way to a stop."""

    def __init__(self, limit):
        self.limit = max(1, int(limit))
        self._lock = threading.Lock()
        self._slots = {}

    def acquire(self, host, stop):
        with self._lock:
            slot = self._slots.setdefault(host, threading.BoundedSemaphore(self.limit))
        while not slot.acquire(timeout=0.2):
            if stop.is_set():
                raise Stopped
        return slot


def fetch(url, opts, limiter, stop):
    """:class:`FetchResult` of ``url``: ``ok`` with the body, or why not."""
    result = None
    for attempt in range(opts.retries + 1):
        if attempt:
            # Stop-aware sleep: Ctrl-C is not held up by a backoff.
            if stop.wait(opts.backoff * 2 ** (attempt - 1)):
                raise Stopped
        result = _follow(url, opts, limiter, stop)
        result.attempts = attempt + 1
        if result.outcome == O.OK or not result.transient:
            break
    return result


def _follow(url, opts, limiter, stop):
    """One attempt, following redirects."""
    deadline = time.monotonic() + opts.max_time
    seen = {url}
    current = url
    for _ in range(opts.max_redirects + 1):
        try:
            parts = urlsplit(current)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as e:
            return FetchResult(O.BAD_URL, f"{e}: {current[:200]!r}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FetchResult(O.BAD_URL, f"not an http(s) URL: {current[:200]!r}")
        slot = limiter.acquire(parts.netloc.lower(), stop)
        try:
            result, location = _request(parts, opts, stop, deadline)
        finally:
            slot.release()
        if location is None:
            return result
        current = urljoin(current, location)
        if current in seen:
            return FetchResult(O.TOO_MANY_REDIRECTS, f"redirect loop at {current[:200]}")
        seen.add(current)
    return FetchResult(O.TOO_MANY_REDIRECTS, f"more than {opts.max_redirects} redirects")


def _connection(parts, opts):
    port = parts.port
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, port, timeout=opts.connect_timeout,
                                           context=ssl.create_default_context())
    return http.client.HTTPConnection(parts.hostname, port, timeout=opts.connect_timeout)


def _request(parts, opts, stop, deadline):
    """(result, None), or (None, Location) for a redirect."""
    target = quote(parts.path or "/", safe=_URL_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_URL_SAFE)
    conn = _connection(parts, opts)
    phase = "connect"
    try:
        conn.connect()
        phase = "read"
        conn.sock.settimeout(opts.read_timeout)
        conn.request("GET", target, headers={
            "User-Agent": opts.user_agent, "Accept": "image/*,*/*;q=0.5",
            "Accept-Encoding": "identity", "Connection": "close"})
        resp = conn.getresponse()
        if resp.status in REDIRECT_STATUSES:
            location = resp.getheader("Location")
            if not location:
                return FetchResult(O.HTTP_ERROR, f"HTTP {resp.status} without a Location"), None
            return None, location.strip()
        if resp.status != 200:
            return FetchResult(O.HTTP_ERROR, f"HTTP {resp.status}", transient=resp.status in TRANSIENT_STATUSES), None
        ctype = (resp.getheader("Content-Type") or "").lower()
        if ctype.startswith(("text/", "application/json", "application/xhtml")):
            return FetchResult(O.NOT_IMAGE, f"Content-Type {ctype[:60]}"), None
        length = resp.getheader("Content-Length")
        length = int(length) if length and length.strip().isdigit() else None
        if length is not None and length > opts.max_bytes:
            return FetchResult(O.TOO_LARGE, f"Content-Length {length} over {opts.max_bytes} bytes"), None
        return _read_body(resp, length, opts, stop, deadline), None
    except (socket.timeout, TimeoutError):
        return FetchResult(O.TIMEOUT, f"{phase} timed out", transient=True), None
    except socket.gaierror as e:
        return FetchResult(O.CONNECTION_ERROR, f"cannot resolve host: {e.strerror or e}"), None
    except ConnectionRefusedError:
        return FetchResult(O.CONNECTION_ERROR, "connection refused"), None
    except ssl.SSLError as e:
        return FetchResult(O.CONNECTION_ERROR, f"TLS: {e.reason or e}"), None
    except (http.client.InvalidURL, UnicodeError, ValueError) as e:
        return FetchResult(O.BAD_URL, str(e)[:200]), None
    except (OSError, http.client.HTTPException) as e:
        # Resets, a connection closed mid-response, a garbled status line.
        return FetchResult(O.CONNECTION_ERROR, f"{type(e).__name__}: {e}"[:200], transient=True), None
    finally:
        conn.close()


def _read_body(resp, length, opts, stop, deadline):
    chunks, total = [], 0
    while True:
        if stop.is_set():
            raise Stopped
        if time.monotonic() > deadline:
            return FetchResult(O.TIMEOUT, f"took longer than {opts.max_time:g} s", transient=True)
        chunk = resp.read1(_CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > opts.max_bytes:
            return FetchResult(O.TOO_LARGE, f"body over {opts.max_bytes} bytes")
        chunks.append(chunk)
    if length is not None and total < length:
        return FetchResult(O.CONNECTION_ERROR, f"closed after {total} of {length} bytes", transient=True)
    return FetchResult(O.OK, data=b"".join(chunks))
