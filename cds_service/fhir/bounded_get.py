"""One capped, deadline-bounded HTTP GET, used for FHIR servers and for client JWK Sets alike.

``get_body`` reads a response body in chunks of at most one socket read each and stops it:

* at ``deadline`` (a ``time.monotonic()`` instant): a server that trickles bytes is cut off,
  although each socket read is within the connect/read timeout;
* at ``max_bytes`` of *decoded* body: gzip and deflate are decoded here, a bounded slice at a
  time (``zlib`` ``max_length``), never by urllib3, so a small compressed body cannot expand
  into a huge one in memory; any other ``Content-Encoding`` is refused;
* when a ``Budget`` (a per-request allowance, itself drawn from a per-process one) runs out.

Redirects are never followed. Every failure is a ``Refused`` whose ``kind`` is one of a few
words (timed out, refused, unreadable, too large) that may be shown; ``detail`` (status code,
error class) is for the log only. Neither carries a URL, a query or a token.
"""

from __future__ import annotations

import http.cookiejar
import socket
import threading
import time
import zlib

import requests
import requests.adapters
import urllib3.exceptions

CHUNK_BYTES = 65_536

TIMED_OUT = "timed out"
REFUSED = "refused"
UNREADABLE = "unreadable"
TOO_LARGE = "too large"


def return_large_buffers_to_the_os() -> bool:
    """Make glibc serve every allocation of ``CHUNK_BYTES`` or more by ``mmap`` (a fixed threshold).

    By default glibc raises its mmap threshold after freeing a large buffer, so that later body
    chunks come from the heap of the thread's arena, where freed memory is rarely given back: a
    worker then stays at its peak after a burst of large bodies. With the threshold fixed, each
    chunk and each joined body is unmapped when freed. Process-wide; a no-op (False) elsewhere.
    """
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, CHUNK_BYTES))
    except (OSError, AttributeError):
        return False


M_MMAP_THRESHOLD = -3               # glibc's mallopt parameter number


class Refused(Exception):
    """The GET gave no usable body. ``kind``: TIMED_OUT, REFUSED, UNREADABLE or TOO_LARGE; ``detail``: log only."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail or kind


class Budget:
    """Bytes that response bodies may hold; thread-safe.

    A budget may draw on a ``parent`` (the per-process budget): ``take`` succeeds only if both
    have room. ``close`` gives everything back to the parent and refuses any later ``take``, so
    an abandoned query that is still reading cannot keep memory the request no longer owns.
    """

    def __init__(self, limit: int, parent: Budget | None = None):
        self.limit = limit
        self.parent = parent
        self.used = 0
        self.peak = 0
        self.closed = False
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.closed or self.used + size > self.limit:
                return False
            if self.parent is not None and not self.parent.take(size):
                return False
            self.used += size
            self.peak = max(self.peak, self.used)
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            size = min(size, self.used)
            self.used -= size
        if self.parent is not None:
            self.parent.give_back(size)

    def close(self) -> None:
        with self._lock:
            held, self.used, self.closed = self.used, 0, True
        if self.parent is not None and held:
            self.parent.give_back(held)


class _Decoder:
    """Content-Encoding identity, gzip or deflate, decoded at most ``limit`` bytes at a time."""

    def __init__(self, encoding: str):
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._inflate = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib header; raw deflate is refused below
        else:
            raise Refused(UNREADABLE, f"content encoding {encoding[:20]!r}")

    def feed(self, data: bytes, limit: int) -> list[bytes]:
        """The decoded pieces of ``data``; more than ``limit`` bytes in all raises TOO_LARGE."""
        if self._inflate is None:
            if len(data) > limit:
                del data
                raise Refused(TOO_LARGE)
            return [data] if data else []
        pieces, total = [], 0
        try:
            while data:
                piece = self._inflate.decompress(data, max(1, limit - total + 1))
                total += len(piece)
                pieces.append(piece)
                del piece
                if total > limit:
                    raise Refused(TOO_LARGE, "decoded body over the cap")
                data = self._inflate.unconsumed_tail
        except zlib.error:
            pieces.clear()
            raise Refused(UNREADABLE, "corrupt compressed body") from None
        except Refused:
            pieces.clear()      # the traceback keeps this frame: not what was decoded
            raise
        return pieces


def new_session(pool_size: int) -> requests.Session:
    """A pooled session that keeps no cookies, safe to share between threads for plain GETs."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def get_body(session: requests.Session, url: str, *, headers: dict[str, str], timeout: float, deadline: float,
             max_bytes: int, budget: Budget | None = None) -> bytes:
    """The body of a 200 answer to GET ``url``; ``Refused`` for anything else.

    Bytes taken from ``budget`` stay taken (the caller's result holds them) until the budget is
    closed; a refused read gives back what it took.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Refused(TIMED_OUT, "no time left")
    seconds = min(timeout, remaining)
    try:
        with session.get(url, headers={"Accept-Encoding": "gzip, deflate", **headers}, timeout=(seconds, seconds),
                         allow_redirects=False, stream=True) as response:
            if response.status_code != 200:
                raise Refused(REFUSED, f"answered {response.status_code}")
            decoder = _Decoder(response.headers.get("Content-Encoding", ""))
            chunks: list[bytes] = []
            try:
                _read_into(chunks, response, decoder, deadline, max_bytes, budget)
                return b"".join(chunks)
            finally:
                # a refused read's traceback keeps this frame alive until the cycle collector runs:
                # it must not keep the chunks read so far (up to max_bytes per query) with it
                chunks.clear()
    except Refused:
        raise
    except requests.Timeout:
        raise Refused(TIMED_OUT, "socket timeout") from None
    except (requests.RequestException, OSError, ValueError) as error:
        raise Refused(_timeout_or_refused(error), _connection_detail(error)) from None


def _read_into(chunks: list[bytes], response, decoder: _Decoder, deadline: float, max_bytes: int,
               budget: Budget | None) -> int:
    """Read the body into ``chunks``; return the bytes taken from ``budget`` (given back on failure)."""
    size = taken = 0
    try:
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=False):
            for piece in decoder.feed(chunk, max_bytes - size):
                size += len(piece)
                if budget is not None:
                    if not budget.take(len(piece)):
                        raise Refused(TOO_LARGE, "over the memory budget for FHIR bodies")
                    taken += len(piece)
                chunks.append(piece)
            del chunk
            if time.monotonic() > deadline:
                raise Refused(TIMED_OUT, "deadline passed while reading the body")
    except BaseException:
        chunks.clear()
        if budget is not None and taken:
            budget.give_back(taken)
        raise
    return taken


def _timeout_or_refused(error: BaseException) -> str:
    causes = _causes(error)
    if any(isinstance(c, (ConnectionRefusedError, socket.gaierror, urllib3.exceptions.SSLError)) for c in causes):
        return REFUSED      # (urllib3's NewConnectionError is also a TimeoutError: check these first)
    if any(isinstance(c, (socket.timeout, TimeoutError, urllib3.exceptions.TimeoutError)) for c in causes):
        return TIMED_OUT
    return REFUSED


def _connection_detail(error: BaseException) -> str:
    """What went wrong on the network, for the log: error class names only, no URL."""
    causes = _causes(error)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "host name not resolved"
    if any(isinstance(c, urllib3.exceptions.SSLError) for c in causes):
        return "TLS failed"
    return "connection failed: " + " <- ".join(type(c).__name__ for c in causes[:4])


def _causes(error: BaseException) -> list[BaseException]:
    """The error, its causes and contexts, and what urllib3 wraps (``reason``, ``args``)."""
    seen, todo = [], [error]
    while todo and len(seen) < 20:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen
