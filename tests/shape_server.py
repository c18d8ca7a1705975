"""A loopback HTTP server whose answers are functions, for FHIR servers that misbehave on purpose.

    with ShapeServer({"MedicationRequest": json_answer(bundle), "": hang()}) as server:
        server.base_url  # http://127.0.0.1:<port>/fhir

A route is chosen by the longest prefix of the path after ``/fhir/``; its function gets the
handler and writes the whole answer. Every request is counted per route (``hits``).
"""

import gzip
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    request_queue_size = 256
    daemon_threads = True


class ShapeServer:
    def __init__(self, routes):
        self.routes = dict(routes)
        self.hits: dict[str, int] = {}
        self.active = self.most_active = 0      # queries being answered at once, and the most at any time
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):  # noqa: N802
                path = self.path.split("?", 1)[0].removeprefix("/fhir/")
                route = max((r for r in owner.routes if path.startswith(r)), key=len, default=None)
                owner.hits[route] = owner.hits.get(route, 0) + 1
                if route is None:
                    self.send_error(404)
                    return
                with owner.lock:
                    owner.active += 1
                    owner.most_active = max(owner.most_active, owner.active)
                try:
                    owner.routes[route](self, owner)
                except OSError:
                    pass
                finally:
                    with owner.lock:
                        owner.active -= 1

            def log_message(self, *args):
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def send(handler, body: bytes, *, encoding: str | None = None, status: int = 200):
    handler.send_response(status)
    handler.send_header("Content-Type", "application/fhir+json")
    if encoding:
        handler.send_header("Content-Encoding", encoding)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def json_answer(document, status: int = 200):
    body = json.dumps(document).encode()
    return lambda handler, server: send(handler, body, status=status)


def hang(seconds: float = 30):
    """Accept the query and say nothing until ``seconds`` pass, the client hangs up or the server stops."""
    def answer(handler, server):
        until = time.monotonic() + seconds
        while time.monotonic() < until and not server.stopping.wait(0.02):
            readable, _, _ = select.select([handler.connection], [], [], 0)
            if readable and not handler.connection.recv(1, socket.MSG_PEEK):
                return      # the client closed the connection
    return answer


def big_body(size: int, compressed: bool = False):
    """A Bundle of about ``size`` bytes (gzip-compressed on the wire if ``compressed``), streamed."""
    padding = b" " * 1_000_000
    head, tail = b'{"resourceType": "Bundle", "type": "searchset", "entry": []', b"}"

    packed = gzip.compress(head + b" " * size + tail, compresslevel=9) if compressed else b""

    def answer(handler, server):
        if compressed:
            send(handler, packed, encoding="gzip")
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "application/fhir+json")
        handler.send_header("Content-Length", str(len(head) + size + len(tail)))
        handler.end_headers()
        handler.wfile.write(head)
        for _ in range(size // len(padding)):
            handler.wfile.write(padding)
        handler.wfile.write(b" " * (size % len(padding)) + tail)
    return answer


def slow(seconds: float, then):
    def answer(handler, server):
        time.sleep(seconds)
        then(handler, server)
    return answer
