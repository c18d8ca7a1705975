"""Where the audit database lives and how long it keeps rows: ``CDS_*`` variables read once.

- ``CDS_DATABASE_URL``: ``sqlite:///PATH`` (default ``sqlite:///$CDS_DATA_DIR/cds-audit.sqlite3``) or
  ``postgresql://user:password@host:5432/db`` (driven by psycopg 3).
- ``CDS_DATA_DIR``: the folder of the default SQLite file, default ``./var`` (relative to the
  working directory; the container sets an absolute path on a volume).
- ``CDS_AUDIT_RETENTION_DAYS``: what ``cds-service purge`` keeps when ``--older-than`` is not given (400).
- ``CDS_AUDIT_PATIENT_KEY_SECRET``: the secret of the patient key (HMAC-SHA256); see ``pseudonymise``.
"""

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_DATA_DIR = "./var"
DATABASE_FILE = "cds-audit.sqlite3"
DEFAULT_RETENTION_DAYS = 400
MAX_RETENTION_DAYS = 36_500


class AuditSettingsError(ValueError):
    """A ``CDS_*`` audit variable has a value that cannot be used."""


@dataclasses.dataclass(frozen=True)
class AuditSettings:
    database_url: str
    retention_days: int
    patient_key_secret: str | None = dataclasses.field(default=None, repr=False)


def default_database_url(data_dir: str) -> str:
    return "sqlite:///" + str(Path(data_dir).expanduser() / DATABASE_FILE)


def load_audit_settings(environ: Mapping[str, str] | None = None) -> AuditSettings:
    environ = os.environ if environ is None else environ
    url = environ.get("CDS_DATABASE_URL", "").strip()
    if not url:
        url = default_database_url(environ.get("CDS_DATA_DIR", "").strip() or DEFAULT_DATA_DIR)
    raw_days = environ.get("CDS_AUDIT_RETENTION_DAYS", str(DEFAULT_RETENTION_DAYS))
    try:
        days = int(raw_days)
        if not 1 <= days <= MAX_RETENTION_DAYS:
            raise ValueError
    except ValueError:
        raise AuditSettingsError(f"CDS_AUDIT_RETENTION_DAYS={raw_days!r}: expected a whole number of days "
                                 f"from 1 to {MAX_RETENTION_DAYS}") from None
    return AuditSettings(database_url=url, retention_days=days,
                         patient_key_secret=environ.get("CDS_AUDIT_PATIENT_KEY_SECRET") or None)
