"""Typed errors of the lease service, mirroring the TypeScript SDK (src/client/errors.ts).

A call can fail because the resources are taken (:class:`ConflictError`), because the lease
is gone and the work that needs it must stop (:class:`LeaseLostError`), or because the service
or its Redis cannot answer now and the call may be retried (:class:`BackendUnavailableError`).
Every other problem+json answer is a plain :class:`LeaseServiceError`.
"""

from __future__ import annotations

import json
from typing import Any, Optional

__all__ = [
    "LeaseServiceError",
    "ConflictError",
    "LeaseLostError",
    "BackendUnavailableError",
    "error_from_problem",
    "error_from_answer",
]


class LeaseServiceError(Exception):
    """Any problem+json answer; ``code`` is the service's stable error code."""

    def __init__(self, status: int, code: str, message: str, problem: Optional[dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problem: dict[str, Any] = problem if problem is not None else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class ConflictError(LeaseServiceError):
    """409 conflict: leases (or earlier waiting requests) hold a resource of the request."""

    @property
    def conflicts(self) -> list[dict[str, Any]]:
        """``[{path, leaseId, holder, mode, state}]`` as the service listed them."""
        conflicts = self.problem.get("conflicts")
        return list(conflicts) if isinstance(conflicts, list) else []


class LeaseLostError(LeaseServiceError):
    """The lease has ended (410: expired, released or revoked; or 404: not even its tombstone
    is left). Stop the work that needs it: its fencing token is stale.

    Also raised with status 0 and code ``renewal_overdue`` when a held lease's renewal was not
    confirmed within its ttl of being sent.
    """

    @property
    def tombstone(self) -> Optional[dict[str, Any]]:
        """The ended lease, when the service still had its tombstone (a 410); else None."""
        return self.problem if self.status == 410 else None


class BackendUnavailableError(LeaseServiceError):
    """The service answered 503 (or a proxy 502/504), or could not be reached at all (status 0).

    Do not read it as "nothing changed": the change may have been applied. Retrying is safe
    all the same: an acquire retried with the same request id returns the same lease, a
    release or resolve retried answers as a repeat does, and a renew renews again.
    """

    def __init__(
        self,
        status: int,
        message: str,
        problem: Optional[dict[str, Any]] = None,
        retry_after_ms: Optional[float] = None,
    ) -> None:
        super().__init__(status, "unreachable" if status == 0 else "backend_unavailable", message, problem)
        #: Retry-After in ms, when the service sent one.
        self.retry_after_ms = retry_after_ms


def error_from_problem(status: int, problem: dict[str, Any], retry_after: Optional[str]) -> LeaseServiceError:
    """Turns a problem+json answer into the error class its status and code mean."""
    code = problem.get("code") if isinstance(problem.get("code"), str) else f"http_{status}"
    assert isinstance(code, str)
    detail = problem.get("detail")
    message = detail if isinstance(detail, str) else f"HTTP {status}"
    if status == 409 and code == "conflict":
        return ConflictError(status, code, message, problem)
    if status == 410 or code == "lease_not_found":
        return LeaseLostError(status, code, message, problem)
    # 502 and 504: a proxy in front could not reach the service; as retryable as a 503.
    if status in (502, 503, 504):
        retry_after_ms: Optional[float] = None
        if retry_after is not None:
            try:
                seconds = float(retry_after.strip() or "0")
                if seconds == seconds and seconds not in (float("inf"), float("-inf")):
                    retry_after_ms = seconds * 1000
            except ValueError:
                retry_after_ms = None
        return BackendUnavailableError(status, message, problem, retry_after_ms)
    return LeaseServiceError(status, code, message, problem)


def error_from_answer(status: int, text: str, retry_after: Optional[str]) -> LeaseServiceError:
    """The error for an answer that is not 2xx, from its body text (a problem+json, or a proxy's page)."""
    problem: dict[str, Any]
    try:
        parsed = json.loads(text) if text != "" else {}
        problem = parsed if isinstance(parsed, dict) else {"detail": f"HTTP {status}: {text[:200]}"}
    except ValueError:
        problem = {"detail": f"HTTP {status}: {text[:200]}"}
    return error_from_problem(status, problem, retry_after)
