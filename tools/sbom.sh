#!/usr/bin/env bash
# CycloneDX SBOM (JSON, spec 1.6) of what the image installs: requirements.lock, with the project
# itself (pyproject.toml) as the root component. Reproducible output: no random serial number, and
# the timestamp from SOURCE_DATE_EPOCH (the last commit's time when run in a git checkout).
#
#   tools/sbom.sh [OUTPUT]      # default: sbom.cdx.json (not committed; CI builds it)
#
# Needs cyclonedx-py (the cyclonedx-bom package, in the test extra).
set -euo pipefail
cd "$(dirname "$0")/.."
output=${1:-sbom.cdx.json}
cyclonedx=${CYCLONEDX_PY:-$(command -v cyclonedx-py || echo .venv/bin/cyclonedx-py)}
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && epoch=$(git log -1 --format=%ct 2>/dev/null); then
  export SOURCE_DATE_EPOCH=$epoch
fi
PYTHONWARNINGS=ignore::UserWarning "$cyclonedx" requirements --pyproject pyproject.toml --mc-type application --spec-version 1.6 \
  --output-reproducible --output-format JSON --output-file "$output" --validate requirements.lock
echo "wrote $output ($(grep -c '"bom-ref"' "$output") bom-refs)"
