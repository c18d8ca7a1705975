FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    CDS_HOST=0.0.0.0 CDS_PORT=8080
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cds_service ./cds_service
RUN pip install --no-cache-dir . && useradd --system --uid 10001 --no-create-home cds
USER cds
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('CDS_PORT', '8080'), timeout=2).status == 200 else 1)"
CMD ["cds-service", "serve"]
