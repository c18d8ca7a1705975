"""Smoke test of the running container, for .ci/container.sh (run with the repository's venv).

    container_smoke.py keys DIR            # write DIR/trusted-clients.json (a fresh ES384 key, public part)
    container_smoke.py check BASE DIR      # wait for BASE/readyz, then discovery, a service call, /metrics

Authentication stays on, as in production: the container trusts only the key made here, and every
request carries a fresh token signed with it for the exact endpoint URL under BASE.
"""

import json
import sys
import time
import uuid
from pathlib import Path

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parent.parent
ISSUER = "https://ehr.ci.invalid"
KID = "ci-smoke-1"


def keys(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    (directory / "client-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    trusted = {"clients": {ISSUER: {"jwks": {"keys": [{**public, "kid": KID, "alg": "ES384", "use": "sig"}]}}}}
    (directory / "trusted-clients.json").write_text(json.dumps(trusted, indent=2))


def check(base: str, directory: Path) -> None:
    private = serialization.load_pem_private_key((directory / "client-key.pem").read_bytes(), None)

    def headers(path: str) -> dict:
        now = int(time.time())
        token = jwt.encode({"iss": ISSUER, "aud": base + path, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())},
                           private, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})
        return {"Authorization": "Bearer " + token}

    started = time.monotonic()
    while True:
        try:
            ready = requests.get(base + "/readyz", timeout=2)
            if ready.status_code == 200:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() - started > 60:
            sys.exit("container not ready after 60 s")
        time.sleep(0.2)
    print(f"readyz 200 after {time.monotonic() - started:.1f} s: {ready.text.strip()}")

    discovery = requests.get(base + "/cds-services", headers=headers("/cds-services"), timeout=10)
    assert discovery.status_code == 200, (discovery.status_code, discovery.text)
    services = discovery.json()["services"]
    print("discovery 200:", ", ".join(f"{s['id']} ({s['hook']})" for s in services))

    assert requests.get(base + "/cds-services", timeout=10).status_code == 401, "discovery without a token must be 401"
    print("discovery without a token: 401")

    request = json.loads((REPO / "fixtures" / "requests" / "sandbox-order-sign.json").read_text())
    service = next(s["id"] for s in services if s["hook"] == request["hook"])
    path = f"/cds-services/{service}"
    answer = requests.post(base + path, json=request, headers=headers(path), timeout=10)
    assert answer.status_code == 200, (answer.status_code, answer.text[:500])
    cards = answer.json()["cards"]
    print(f"POST {path} 200: {len(cards)} card(s):", "; ".join(card["summary"] for card in cards))

    metrics = requests.get(base + "/metrics", timeout=10)  # no token: Prometheus scrapes it inside the cluster
    assert metrics.status_code == 200, (metrics.status_code, metrics.text[:500])
    lines = [line for line in metrics.text.splitlines() if line and not line.startswith("#")]
    counted = [line for line in lines
               if line.startswith("cds_http_requests_total{") and f'service="{service}"' in line and 'status="200"' in line]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1, lines[:20]
    print(f"metrics 200: {len(lines)} samples, e.g. {counted[0]}")
    version = requests.get(base + "/version", timeout=10)
    assert version.status_code == 200 and version.json()["knowledgeVersion"], version.text[:300]
    print("version:", version.json())

if __name__ == "__main__":
    if sys.argv[1:2] == ["keys"]:
        keys(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["check"]:
        check(sys.argv[2], Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
