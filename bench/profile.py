"""Where a request's time goes: the served app in-process (authentication on, a fresh ES384 token
per request, the replay cache in a SQLite database), profiled with pyinstrument.

    .venv/bin/pip install pyinstrument
    .venv/bin/python bench/profile.py [typical|large|no-prefetch] [--requests N] [--replay-cache memory]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import charts  # noqa: E402
import run  # noqa: E402
from fhir_stub import FhirStub  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", nargs="?", default="typical", choices=("typical", "large", "no-prefetch"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--replay-cache", default="database", choices=("database", "memory"))
    args = parser.parse_args()
    from pyinstrument import Profiler

    from cds_service import create_app

    folder = Path(tempfile.mkdtemp(prefix="cds-profile-"))
    key_pem, trust = run.make_key(folder)
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    private = load_pem_private_key(key_pem.encode(), None)
    base = "http://127.0.0.1:8080"
    fhir = FhirStub(charts.fhir_resources(), required_token="bench-fhir-token").start()
    fhir.set_fault("latency", delay=0.1)
    body = json.dumps(charts.bodies(fhir.base_url)[args.case])
    app = create_app({"require_jwt": True, "trusted_clients_file": str(trust), "public_base_url": base,
                      "log_level": "WARNING", "replay_cache": args.replay_cache},
                     environ={"CDS_DATA_DIR": str(folder / "data")})
    client = app.test_client()
    now = int(time.time())
    tokens = [jwt.encode({"iss": run.ISS, "aud": base + run.PATH, "iat": now, "exp": now + 600,
                          "jti": os.urandom(12).hex()}, private, algorithm="ES384",
                         headers={"kid": run.KID, "typ": "JWT"}) for _ in range(args.requests + 20)]
    headers = [{"Authorization": "Bearer " + token, "Content-Type": "application/json"} for token in tokens]
    for index in range(20):
        assert client.post(run.PATH, data=body, headers=headers[index]).status_code == 200
    cpu = time.process_time()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for index in range(20, 20 + args.requests):
        client.post(run.PATH, data=body, headers=headers[index])
    profiler.stop()
    cpu = (time.process_time() - cpu) / args.requests * 1000
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    print(f"{args.case}: {cpu:.2f} ms CPU per request in-process (profiler on), replay cache {args.replay_cache}")
    fhir.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
