"""The benchmark against the floor: `cds-service serve` (authentication on, a fresh ES384 token per
request, the replay cache in its database) and a bare Flask app (bench/bare_app.py) under the same
gunicorn settings, driven from a separate process (bench/load.py) over loopback.

    .venv/bin/python bench/run.py            # the full run (about 3-5 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick    # fewer requests, a smoke run (about 1 minute)

Cases: a typical order-sign (~30 prefetched resources), a large chart (~280), and no prefetch
(the chart is read from a loopback FHIR server answering each query in 100 ms); at concurrency 1
and 16. Printed per case: p50/p95/p99, requests/s, errors, server CPU ms per request (master and
workers, from /proc), the share of that CPU each worker did (an idle worker shows as ~0%), and
the ratios to the bare app; then resident memory per worker after 1,000 and 10,000 requests, and
the time from process start to the first answered hook (on a new database, and on a restart with
the database in place). Results also go to bench/results.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tests")]

import charts  # noqa: E402
from fhir_stub import FhirStub  # noqa: E402

ISS = "https://bench-ehr.example.org"
KID = "bench-1"
PATH = "/cds-services/milnacipran-order-sign"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_key(folder: Path) -> tuple[str, Path]:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP384R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update(kid=KID, alg="ES384", use="sig")
    trust = folder / "trusted-clients.json"
    trust.write_text(json.dumps({"_comment": "benchmark key", "clients": {ISS: {"jwks": {"keys": [jwk]}}}}))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem, trust


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Server:
    def __init__(self, name: str, command: list[str], env: dict, port: int, log: Path):
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"
        self.started = time.monotonic()
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env},
                                            stdout=subprocess.DEVNULL, stderr=out)

    def wait_first_answer(self, body: dict, token_for) -> float:
        """Seconds from process start to the first answered hook."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.name} exited"
            try:
                answer = requests.post(self.base + PATH, json=body, timeout=5,
                                       headers={"Authorization": "Bearer " + token_for(self.base)})
                if answer.status_code == 200:
                    return round(time.monotonic() - self.started, 2)
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} did not answer")

    def workers(self) -> list[int]:
        return sorted(children(self.process.pid))

    def cpu(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in [self.process.pid, *self.workers()]}

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def drive(server: Server, body: dict, requests_: int, concurrency: int, key_pem: str | None, folder: Path) -> dict:
    spec = {"base": server.base, "path": PATH, "body": body, "requests": requests_, "concurrency": concurrency,
            "iss": ISS, "kid": KID, "key_pem": key_pem}
    spec_path = folder / f"spec-{server.name}.json"
    spec_path.write_text(json.dumps(spec))
    before = server.cpu()
    out = subprocess.run([sys.executable, str(HERE / "load.py"), str(spec_path)], capture_output=True, text=True,
                         check=True)
    after = server.cpu()
    result = json.loads(out.stdout)
    deltas = {pid: after.get(pid, 0.0) - before.get(pid, 0.0) for pid in after}
    total = sum(deltas.values())
    result["cpu_ms_per_request"] = round(total * 1000 / max(1, result["requests"]), 2)
    workers = [deltas[pid] for pid in server.workers() if pid in deltas]
    result["worker_cpu_share"] = [round(d / total, 2) if total else 0 for d in workers]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("CDS_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("CDS_THREADS", "4")))
    parser.add_argument("--worker-class", default=os.environ.get("CDS_WORKER_CLASS", "gthread"),
                        choices=("gthread", "sync"))
    parser.add_argument("--replay-cache", default="database", choices=("database", "memory"))
    parser.add_argument("--out", default=str(HERE / "results.json"))
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    counts = {("typical", 1): 400, ("typical", 16): 3000, ("large", 1): 300, ("large", 16): 1500,
              ("no-prefetch", 1): 60, ("no-prefetch", 16): 400}
    counts = {k: max(30, int(v * scale)) for k, v in counts.items()}
    memory_marks = (1000, 10000) if not args.quick else (1000, 2000)

    folder = Path(tempfile.mkdtemp(prefix="cds-bench-"))
    key_pem, trust = make_key(folder)
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    private = load_pem_private_key(key_pem.encode(), None)

    def token_for(base):
        now = int(time.time())
        return jwt.encode({"iss": ISS, "aud": base + PATH, "iat": now, "exp": now + 300, "jti": os.urandom(12).hex()},
                          private, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})

    # The package's bytecode, as the image's `pip install` compiles it (an editable install under
    # PYTHONDONTWRITEBYTECODE would compile every module at each start: ~0.4 s of CPU here).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "cds_service")], check=True,
                   stdout=subprocess.DEVNULL)
    fhir = FhirStub(charts.fhir_resources(), required_token="bench-fhir-token").start()
    fhir.set_fault("latency", delay=0.1)
    bodies = charts.bodies(fhir.base_url)
    gunicorn_settings = ["--workers", str(args.workers), "--threads", str(args.threads), "--keep-alive", "0",
                         "--worker-class", args.worker_class, "--timeout", "30"]
    service_port, bare_port = free_port(), free_port()
    def start_service() -> Server:
        return Server("service", [str(Path(sys.executable).parent / "cds-service"), "serve", "--host", "127.0.0.1",
                                  "--port", str(service_port)],
                      {"CDS_REQUIRE_JWT": "true", "CDS_TRUSTED_CLIENTS_FILE": str(trust), "CDS_LOG_LEVEL": "WARNING",
                       "CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{service_port}", "CDS_WORKERS": str(args.workers),
                       "CDS_THREADS": str(args.threads), "CDS_WORKER_CLASS": args.worker_class,
                       "CDS_REPLAY_CACHE": args.replay_cache, "CDS_DATA_DIR": str(folder / "data"),
                       "CDS_DATABASE_URL": ""},
                      service_port, folder / "service.log")

    service = start_service()
    results: dict = {"settings": {"workers": args.workers, "threads": args.threads, "worker_class": args.worker_class,
                                  "replay_cache": args.replay_cache, "cpus": os.cpu_count(),
                                  "load_average": os.getloadavg()}, "cases": {}}
    bare = None
    try:
        first_service = service.wait_first_answer(bodies["typical"], token_for)
        bare = Server("bare", [sys.executable, "-m", "gunicorn", *gunicorn_settings, "--bind", f"127.0.0.1:{bare_port}",
                               "--chdir", str(HERE), "bare_app:app"], {}, bare_port, folder / "bare.log")
        results["first_answer_s"] = {"service, new database": first_service,
                                     "bare": bare.wait_first_answer(bodies["typical"], token_for)}
        for server in (service, bare):  # warm-up
            drive(server, bodies["typical"], 100, 4, key_pem, folder)
        for (case, concurrency), count in counts.items():
            row = {}
            for server in (service, bare):
                row[server.name] = drive(server, bodies[case], count, concurrency, key_pem, folder)
            s, b = row["service"], row["bare"]
            row["ratio"] = {"p50": round(s["p50_ms"] / b["p50_ms"], 2) if b["p50_ms"] else None,
                            "rps": round(s["rps"] / b["rps"], 2) if b["rps"] else None,
                            "cpu": round(s["cpu_ms_per_request"] / b["cpu_ms_per_request"], 2)
                            if b["cpu_ms_per_request"] else None}
            results["cases"][f"{case} c={concurrency}"] = row
            print_row(f"{case} c={concurrency}", row)
        memory = {}
        for server in (service, bare):
            done = 0
            marks = {}
            for mark in memory_marks:
                drive(server, bodies["typical"], mark - done, 16, key_pem, folder)
                done = mark
                marks[mark] = [rss_mb(pid) for pid in server.workers()]
            memory[server.name] = marks
        results["rss_mb_per_worker"] = memory
        print(f"\nRSS MB per worker after {memory_marks[0]} / {memory_marks[1]} typical requests:")
        for name, marks in memory.items():
            print(f"  {name:8} {marks[memory_marks[0]]} / {marks[memory_marks[1]]}")
        service.stop()
        service = start_service()  # a restart: the database is there and at the newest schema (a pod restart)
        results["first_answer_s"]["service, restart"] = service.wait_first_answer(bodies["typical"], token_for)
        print(f"first answer after start (s): {results['first_answer_s']}")
    finally:
        service.stop()
        if bare is not None:
            bare.stop()
        fhir.stop()
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nresults written to {args.out}; server logs in {folder}")
    return 0


def print_row(name: str, row: dict) -> None:
    if not getattr(print_row, "header", False):
        print(f"{'case':20} {'server':8} {'p50':>7} {'p95':>7} {'p99':>7} {'req/s':>7} {'err':>4} {'cpu ms':>7}  worker share")
        print_row.header = True
    for server in ("service", "bare"):
        r = row[server]
        print(f"{name:20} {server:8} {r['p50_ms']:7.2f} {r['p95_ms']:7.2f} {r['p99_ms']:7.2f} {r['rps']:7.1f} "
              f"{r['errors']:4d} {r['cpu_ms_per_request']:7.2f}  {r['worker_cpu_share']}"
              + (f"  e.g. {r['error_samples'][:1]}" if r["errors"] else ""))
    print(f"{name:20} {'ratio':8} p50 x{row['ratio']['p50']}  req/s x{row['ratio']['rps']}  cpu x{row['ratio']['cpu']}")


if __name__ == "__main__":
    sys.exit(main())
