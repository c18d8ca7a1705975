"""Load generator, run as its own process by ``bench/run.py``: threads with keep-alive
``http.client`` connections, a fresh ES384 token per request (minted before the clock starts).

    python bench/load.py SPEC.json   ->  prints one JSON object of results on stdout
"""

import http.client
import json
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit


def mint(spec: dict, count: int) -> list[str]:
    if not spec.get("key_pem"):
        return ["bench-no-auth"] * count
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(spec["key_pem"].encode(), None)
    now = int(time.time())
    return [jwt.encode({"iss": spec["iss"], "aud": spec["base"] + spec["path"], "iat": now, "exp": now + 600,
                        "jti": str(uuid.uuid4())}, key, algorithm="ES384", headers={"kid": spec["kid"], "typ": "JWT"})
            for _ in range(count)]


def run(spec: dict) -> dict:
    total, concurrency = spec["requests"], spec["concurrency"]
    tokens = mint(spec, total)
    body = json.dumps(spec["body"]).encode()
    parts = urlsplit(spec["base"])
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = [0]

    def worker():
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= total:
                break
            headers = {"Content-Type": "application/json", "Authorization": "Bearer " + tokens[index]}
            started = time.perf_counter()
            try:
                connection.request("POST", spec["path"], body, headers)
                response = connection.getresponse()
                data = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200 or b'"cards"' not in data:
                    with lock:
                        errors.append(f"{response.status} {data[:120]!r}")
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            except (OSError, http.client.HTTPException) as error:
                elapsed = time.perf_counter() - started
                with lock:
                    errors.append(type(error).__name__)
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            with lock:
                latencies.append(elapsed)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)
    return {"requests": len(latencies), "errors": len(errors), "error_samples": errors[:3], "wall_s": round(wall, 3),
            "rps": round(len(latencies) / wall, 1), "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99)}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(run(json.load(f))))
