# syntax=docker/dockerfile:1
# Milnacipran CDS Hooks service. Build (the CA bundle is used by pip at build time only, never stored):
#   docker build --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt \
#     --build-arg VERSION=0.1.0 --build-arg SOURCE_URL=https://git.hospital.org/cds -t milnacipran-cds .
# Runs as uid/gid 10001 with a read-only root file system: the only writable paths it needs are
# /tmp (TMPDIR, HOME; gunicorn's worker heartbeat files, the per-worker metrics files) and /var/lib/cds
# (CDS_DATA_DIR, the SQLite audit database and JWT replay table when no CDS_DATABASE_URL is set).
# Mount both (tmpfs / emptyDir / volume).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Optional package index for a site mirror (pip's CA bundle comes as the pip_cert secret, below).
ARG PIP_INDEX_URL=https://pypi.org/simple

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/cds/venv/bin:$PATH HOME=/tmp TMPDIR=/tmp \
    CDS_HOST=0.0.0.0 CDS_PORT=8080 CDS_DATA_DIR=/var/lib/cds

# The service's user (numeric, so Kubernetes' runAsNonRoot can verify it) and its data directory.
RUN groupadd --system --gid 10001 cds \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin cds \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/cds \
    && python3 -m venv /opt/cds/venv

# Dependencies: their own layer, from the lock file only, so a code change does not reinstall them.
COPY requirements.lock /opt/cds/requirements.lock
RUN --mount=type=secret,id=pip_cert,required=false \
    if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip install --no-cache-dir --disable-pip-version-check --index-url "${PIP_INDEX_URL}" \
       --no-deps --requirement /opt/cds/requirements.lock

# The code: installed offline, without dependencies (all pinned above), then the build tree removed.
WORKDIR /opt/cds/src
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
RUN pip install --no-cache-dir --disable-pip-version-check --no-index --no-deps --no-build-isolation . \
    && rm -rf /opt/cds/src/build /opt/cds/src/*.egg-info \
    && pip check

# Labels last: their build arguments change on every build and must not invalidate the layers above.
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG LICENSE=LicenseRef-Proprietary
ARG SOURCE_URL=https://example.org/milnacipran-cds
LABEL org.opencontainers.image.title="milnacipran-cds" \
      org.opencontainers.image.description="CDS Hooks 2.0 service that checks milnacipran (Savella) orders" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="${LICENSE}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('CDS_PORT', '8080'), timeout=2).status == 200 else 1)"]
CMD ["cds-service", "serve"]
