"""A standard-library-only Python client of the lease service (HTTP API lease-api-v1).

    from lease_client import LeaseClient

    client = LeaseClient("http://127.0.0.1:8080")
    with client.lease(["instances/i-42"], holder="conductor-z", ttl_ms=15000) as held:
        write_with_token(held.fencing_token)

See README.md for more.
"""

from .client import JSON, LeaseClient, Resource
from .conductor import Conductor
from .errors import (
    BackendUnavailableError,
    ConflictError,
    LeaseLostError,
    LeaseServiceError,
    error_from_answer,
    error_from_problem,
)
from .events import parse_frames
from .held import HeldLease, LeaseScope, RetryElsewhereError

__all__ = [
    "JSON",
    "Resource",
    "LeaseClient",
    "Conductor",
    "HeldLease",
    "LeaseScope",
    "RetryElsewhereError",
    "LeaseServiceError",
    "ConflictError",
    "LeaseLostError",
    "BackendUnavailableError",
    "error_from_answer",
    "error_from_problem",
    "parse_frames",
]

__version__ = "0.1.0"
