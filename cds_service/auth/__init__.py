"""Who may call the service: trusted clients, their keys, JWT verification and the replay check."""

from cds_service.auth.replay import InMemoryReplayCache
from cds_service.auth.replay import ReplayCache
from cds_service.auth.trust import TrustConfigError
from cds_service.auth.trust import TrustedClient
from cds_service.auth.trust import load_trusted_clients
from cds_service.auth.verify import ClientAuthenticator
from cds_service.auth.verify import Unauthorized

__all__ = ["ClientAuthenticator", "InMemoryReplayCache", "ReplayCache", "TrustConfigError", "TrustedClient",
           "Unauthorized", "load_trusted_clients"]
