"""Key fetching has the guarantees of FHIR fetching (issue 13): capped, deadline-bounded, per-URL locks,
and a forged ``kid`` cannot hold back a real key rotation for more than a few seconds."""

import json
import socket
import threading
import time

import pytest
from test_auth import BASE
from test_auth import EC_ISS
from test_auth import EC_JWKS_PATH
from test_auth import JwksServer
from test_auth import accept
from test_auth import ec_key
from test_auth import make_token
from test_auth import reject

from cds_service.auth import ClientAuthenticator
from cds_service.auth.jwks import MAX_JWKS_BYTES
from cds_service.auth.jwks import HttpJwksFetcher
from cds_service.auth.trust import TrustedClient


class Trickler:
    """A loopback server that sends its answer one byte every ``delay`` seconds (headers, or body after them)."""

    def __init__(self, what: str, delay: float = 0.05):
        self.what, self.delay = what, delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        body = json.dumps({"keys": []}).encode() + b" " * 10_000
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        try:
            conn.recv(65536)
            if self.what == "body":
                conn.sendall(head)
            for byte in (head + body if self.what == "headers" else body):
                if self.stop.is_set():
                    break
                conn.sendall(bytes([byte]))
                time.sleep(self.delay)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("what", ["headers", "body"])
def test_a_trickling_jwks_endpoint_is_cut_off_at_the_timeout(what):
    trickler = Trickler(what)
    try:
        fetcher = HttpJwksFetcher(timeout=0.5)
        started = time.monotonic()
        with pytest.raises((TimeoutError, ValueError)):
            fetcher(trickler.url)
        assert time.monotonic() - started < 0.9
        # the abandoned fetch is not started again while it still runs
        started = time.monotonic()
        if what == "headers":
            with pytest.raises(TimeoutError, match="still running"):
                fetcher(trickler.url)
            assert time.monotonic() - started < 0.1
    finally:
        trickler.close()


def test_a_huge_jwks_is_refused():
    server = JwksServer()
    server.routes["/big"] = {"keys": [], "pad": "x" * (MAX_JWKS_BYTES + 10)}
    try:
        with pytest.raises(ValueError, match="too large"):
            HttpJwksFetcher(timeout=2.0)(server.url("/big"))
    finally:
        server.close()


def test_a_slow_issuer_does_not_delay_another_issuers_key_refresh():
    """Per-URL locks: with one issuer's JWKS endpoint trickling, another issuer's tokens verify at once."""
    trickler, server = Trickler("headers", delay=0.2), JwksServer()
    good = ec_key("good-key")
    server.routes[EC_JWKS_PATH] = {"keys": [good.jwk()]}
    clients = {
        EC_ISS: TrustedClient(EC_ISS, jku_urls=(server.url(EC_JWKS_PATH),)),
        "https://slow.example.org": TrustedClient("https://slow.example.org", jku_urls=(trickler.url,)),
    }
    auth = ClientAuthenticator(clients, public_base_url=BASE, http_timeout=1.0)
    slow_token = make_token(ec_key("slow-key"), iss="https://slow.example.org", aud=f"{BASE}/cds-services")
    try:
        threads = [threading.Thread(target=_try, args=(auth, slow_token)) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.1)                     # the slow issuer's fetch is under way
        started = time.monotonic()
        assert auth.authenticate(f"Bearer {make_token(good, aud=f'{BASE}/cds-services')}", "/cds-services")
        assert time.monotonic() - started < 0.5
        for thread in threads:
            thread.join(3)
    finally:
        trickler.close()
        server.close()


def _try(auth, token):
    try:
        auth.authenticate(f"Bearer {token}", "/cds-services")
    except Exception:
        pass


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


def test_a_forged_kid_delays_a_real_key_rotation_by_a_few_seconds_at_most(caplog):
    server = JwksServer()
    old, new = ec_key("old-key"), ec_key("new-key")
    server.routes[EC_JWKS_PATH] = {"keys": [old.jwk()]}
    clock = Clock()
    auth = ClientAuthenticator({EC_ISS: TrustedClient(EC_ISS, jku_urls=(server.url(EC_JWKS_PATH),))},
                               public_base_url=BASE, clock=clock, http_timeout=1.0)
    try:
        accept(auth, make_token(old))
        clock.now += 3600 - 1               # cache still fresh
        reject(auth, f"Bearer {make_token(ec_key('forged-kid'))}", caplog)      # an attacker's refetch
        assert server.hits[EC_JWKS_PATH] == 2
        server.routes[EC_JWKS_PATH] = {"keys": [old.jwk(), new.jwk()]}     # the EHR rotates a second later
        clock.now += 1
        reject(auth, f"Bearer {make_token(new)}", caplog)                  # still inside the window
        clock.now += 4                                                     # 5 s after the forged kid
        accept(auth, make_token(new))
        assert server.hits[EC_JWKS_PATH] == 3
    finally:
        server.close()
