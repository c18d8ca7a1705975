"""What the views work with, built once by ``create_app`` and reached through one typed accessor."""

import dataclasses
from typing import Any

from flask import Flask
from flask import current_app

from cds_service.audit import Audit
from cds_service.auth import ClientAuthenticator
from cds_service.pipeline import OrderCheck
from cds_service.settings import Settings

_KEY = "cds_service"


@dataclasses.dataclass(frozen=True)
class Components:
    settings: Settings
    check: OrderCheck
    discovery: dict
    authenticator: ClientAuthenticator | None  # None: authentication off (CDS_REQUIRE_JWT=false)
    audit: Audit | None = None  # None: audit off (CDS_AUDIT_ENABLED=false)
    database: Any = None  # what /readyz pings (``ping()`` raising when the database is unreachable), if any


def install(app: Flask, components: Components) -> None:
    app.extensions[_KEY] = components


def components(app: Flask | None = None) -> Components:
    """The components of ``app`` (default: the app handling the current request)."""
    return (app or current_app).extensions[_KEY]
