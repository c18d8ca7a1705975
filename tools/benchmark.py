"""Server CPU per request over the scenarios, through the Flask test client (no network).

    .venv/bin/python tools/benchmark.py [--rounds 20]

Prints the CPU time (process_time) per request: median, p95 and max over all scenarios and
rounds, for the whole HTTP path (JSON parse, envelope, orders, snapshot, rules, cards, JSON
out), the slowest scenario, and the peak memory the process reached. Like ``cds-service serve``,
it freezes the start-up objects out of garbage collection after warming up. Authentication is off: JWT verification is a
separate, fixed cost (one ES384/RS384 signature check).
"""

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cds_service import create_app  # noqa: E402
from cds_service.scenario import load_scenario  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    paths = sorted((REPO / "fixtures" / "scenarios").glob("*.json"))
    scenarios = [load_scenario(path) for path in paths]
    now = scenarios[0].now
    client = create_app({"require_jwt": False, "log_level": "ERROR"}, clock=lambda: now).test_client()
    bodies = [(f"/cds-services/{s.service}", json.dumps(s.request).encode()) for s in scenarios]
    for path, body in bodies:  # warm-up: imports, caches (then freeze, as serve does)
        client.post(path, data=body, content_type="application/json")
    gc.freeze()
    samples, slowest = [], (0.0, "")
    for _ in range(args.rounds):
        for scenario, (path, body) in zip(paths, bodies):
            started = time.process_time()
            response = client.post(path, data=body, content_type="application/json")
            elapsed = (time.process_time() - started) * 1000
            samples.append(elapsed)
            slowest = max(slowest, (elapsed, scenario.stem))
            assert response.status_code == 200
    samples.sort()
    print(f"requests: {len(samples)} ({len(bodies)} scenarios x {args.rounds} rounds)")
    print(f"CPU per request: median {statistics.median(samples):.2f} ms, "
          f"p95 {samples[int(len(samples) * 0.95)]:.2f} ms, max {samples[-1]:.2f} ms ({slowest[1]})")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
