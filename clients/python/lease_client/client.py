"""LeaseClient: one method per operation of the lease service's HTTP API (lease-api-v1).

Mirrors the TypeScript SDK (src/client/transport.ts and lease-client.ts). Calls that are
safe to repeat (acquire, which always carries a request id; renew; release; resolve; the
fencing check; reads) are retried with backoff and jitter, honouring Retry-After, when the
service or its Redis is unavailable. ``revoke`` and ``claim_orphan`` are not retried: a
repeated revoke answers 410, a repeated claim takes another orphan.

Answers are returned as the service's JSON objects (dicts with the API's camelCase keys).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

from ._backoff import RetryPolicy, with_retries
from .errors import BackendUnavailableError, error_from_answer

if TYPE_CHECKING:  # pragma: no cover
    from .held import LeaseScope

__all__ = ["LeaseClient", "Resource", "JSON"]

JSON = dict[str, Any]
#: A resource: a path (``"instances/i-42"``, exclusive) or ``{"path": ..., "mode": "shared"}``.
Resource = Union[str, Mapping[str, Any]]


def _resources(resources: Union[Resource, Iterable[Resource]]) -> list[dict[str, Any]]:
    if isinstance(resources, (str, Mapping)):
        resources = [resources]
    out: list[dict[str, Any]] = []
    for resource in resources:
        out.append({"path": resource} if isinstance(resource, str) else dict(resource))
    return out


def _query(params: Mapping[str, Any]) -> str:
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((key, str(value)))
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


#: The routes without /namespaces/{namespace} are this namespace.
DEFAULT_NAMESPACE = "default"
#: The contract's namespace names: lower-case letters, digits and dashes, 1 to 63.
_NAMESPACE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: What a header can carry as one bearer credential: visible ASCII, no spaces.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def _check_namespace(namespace: Optional[str]) -> str:
    if namespace is None:
        return DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not _NAMESPACE_NAME.fullmatch(namespace):
        raise ValueError(
            f"Invalid namespace {namespace!r}: a namespace is 1 to 63 lower-case letters, digits and dashes, "
            f"starting with a letter or a digit (^{_NAMESPACE_NAME.pattern}$)."
        )
    return namespace


def _check_token(token: Optional[str]) -> Optional[str]:
    # "" is no token, as it was before tokens were checked (tooz's ?token= may give one).
    if token is None or token == "":
        return None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise ValueError("Invalid token: a bearer token is one or more visible ASCII characters, without spaces.")
    return token


class LeaseClient:
    """A client of the lease service at ``base_url`` (e.g. ``http://127.0.0.1:8080``).

    :param timeout: seconds one HTTP request may take before it counts as unavailable
        (a request's ``wait_ms`` is added). Default 5.
    :param retries: retries after the first try of a call that is safe to repeat (default 3,
        i.e. 4 tries in all, as the TypeScript SDK). 0 disables retries.
    :param backoff_base: seconds; attempt n waits up to ``min(backoff_max, backoff_base * 2**(n-1))``.
    :param backoff_max: seconds; the cap of one pause.
    :param namespace: the namespace (a tenant, a cell or a region) every call works in, the
        event stream included: its leases, orphans, events and fencing tokens never meet
        another's. None or ``"default"``: the routes as they are; otherwise every
        ``/v1/...`` path becomes ``/v1/namespaces/<namespace>/...``. 1 to 63 lower-case
        letters, digits and dashes, starting with a letter or a digit; another name raises
        ValueError here.
    :param token: a bearer token, sent as ``Authorization: Bearer <token>`` on every request
        (the event stream included) for a service with access control on. Visible ASCII
        without spaces; another value raises ValueError here.
    """

    def __init__(
        self,
        base_url: str,
        namespace: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff_base: float = 0.1,
        backoff_max: float = 2.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.namespace = _check_namespace(namespace)
        self.timeout = timeout
        self.retry = RetryPolicy(attempts=max(1, retries + 1), base=backoff_base, max=backoff_max)
        self._headers: dict[str, str] = {"accept": "application/json"}
        token = _check_token(token)
        if token is not None:
            self._headers["authorization"] = f"Bearer {token}"
        # Like Node's fetch, no proxy from the environment: the service is usually near.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # ----------------------------------------------------------------------------- leases

    def acquire(
        self,
        holder: str,
        resources: Union[Resource, Iterable[Resource]],
        ttl_ms: Optional[int] = None,
        wait_ms: Optional[int] = None,
        action: Optional[Mapping[str, Any]] = None,
        request_id: Optional[str] = None,
        max_hold_ms: Optional[int] = None,
        lock_delay_ms: Optional[int] = None,
    ) -> JSON:
        """Acquires a lease (POST /v1/leases) and returns it.

        Raises :class:`ConflictError` when the resources are taken (after ``wait_ms``, if
        given). A request id is generated when none is given, so a retry after a lost answer
        returns the lease that was granted rather than conflicting with it.
        ``action`` is ``{"kind": ..., "payload"?: ..., "maxAttempts"?: ...}``.
        """
        body: dict[str, Any] = {
            "holder": holder,
            "resources": _resources(resources),
            "requestId": request_id if request_id is not None else str(uuid.uuid4()),
        }
        for key, value in (("ttlMs", ttl_ms), ("waitMs", wait_ms), ("maxHoldMs", max_hold_ms), ("lockDelayMs", lock_delay_ms)):
            if value is not None:
                body[key] = value
        if action is not None:
            body["action"] = dict(action)
        return self._retried(lambda: self._call("POST", "/v1/leases", body, wait_ms=wait_ms or 0))

    def renew(self, lease_id: str, ttl_ms: Optional[int] = None, progress: Any = None, *, _deadline: Optional[float] = None) -> JSON:
        """The heartbeat (POST /v1/leases/{id}/renew); raises :class:`LeaseLostError` once the
        lease has ended. ``progress`` (any JSON, at most 16 KiB) replaces the last checkpoint."""
        body: dict[str, Any] = {}
        if ttl_ms is not None:
            body["ttlMs"] = ttl_ms
        if progress is not None:
            body["progress"] = progress
        path = f"/v1/leases/{_segment(lease_id)}/renew"
        return self._retried(lambda: self._call("POST", path, body, deadline=_deadline), deadline=_deadline)

    def release(self, lease_id: str, outcome: str = "completed") -> JSON:
        """Ends the lease (``completed``, ``failed`` or ``abandoned``); returns its tombstone."""
        path = f"/v1/leases/{_segment(lease_id)}/release"
        return self._retried(lambda: self._call("POST", path, {"outcome": outcome}))

    def revoke(self, lease_id: str) -> JSON:
        """An operator's force-end (DELETE /v1/leases/{id}); returns the tombstone.
        Not retried: a repeat after a lost answer would say 410."""
        return self._call("DELETE", f"/v1/leases/{_segment(lease_id)}")

    def get(self, lease_id: str) -> JSON:
        """An active or orphaned lease; raises :class:`LeaseLostError` for an ended one
        (its ``tombstone`` is the ended lease)."""
        path = f"/v1/leases/{_segment(lease_id)}"
        return self._retried(lambda: self._call("GET", path))

    def list(
        self,
        holder: Optional[str] = None,
        prefix: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        include: Optional[str] = None,
    ) -> JSON:
        """One page of leases, ``{"items": [...], "nextCursor": str | None}``; pass
        ``nextCursor`` as ``cursor`` for the next page (or use :meth:`iter_leases`)."""
        path = "/v1/leases" + _query({"holder": holder, "prefix": prefix, "state": state, "limit": limit, "cursor": cursor, "include": include})
        return self._retried(lambda: self._call("GET", path))

    def iter_leases(self, **query: Any) -> Iterator[JSON]:
        """Every lease matching ``query`` (the arguments of :meth:`list`), following nextCursor."""
        yield from _paged(lambda cursor: self.list(**query, cursor=cursor), query.pop("cursor", None))

    def renew_holder(self, holder: str, ttl_ms: Optional[int] = None, cursor: Optional[str] = None) -> JSON:
        """One heartbeat for the active leases of ``holder`` (POST /v1/holders/{holder}/renew)."""
        body: dict[str, Any] = {}
        if ttl_ms is not None:
            body["ttlMs"] = ttl_ms
        if cursor is not None:
            body["cursor"] = cursor
        path = f"/v1/holders/{_segment(holder)}/renew"
        return self._retried(lambda: self._call("POST", path, body))

    def resource(self, path: str, include: Optional[str] = None) -> JSON:
        """What is held at a resource path: ``{path, coveredBy, below: {count, items}}``."""
        url = "/v1/resources/" + "/".join(_segment(s) for s in path.split("/")) + _query({"include": include})
        return self._retried(lambda: self._call("GET", url))

    # ---------------------------------------------------------------------------- orphans

    def claim_orphan(
        self,
        holder: str,
        kinds: Optional[Sequence[str]] = None,
        ttl_ms: Optional[int] = None,
        wait_ms: Optional[int] = None,
    ) -> Optional[JSON]:
        """Claims the oldest pending orphan of these kinds, waiting up to ``wait_ms`` for one:
        ``{"orphan": ..., "lease": ...}``, or None when none came (204). Not retried: a claim
        whose answer was lost has taken an orphan, and a repeat would take another."""
        body: dict[str, Any] = {"holder": holder}
        if kinds is not None:
            body["kinds"] = list(kinds)
        if ttl_ms is not None:
            body["ttlMs"] = ttl_ms
        if wait_ms is not None:
            body["waitMs"] = wait_ms
        return self._call("POST", "/v1/orphans/claim", body, wait_ms=wait_ms or 0)

    def get_orphan(self, orphan_id: str) -> JSON:
        """One orphan (GET /v1/orphans/{id})."""
        path = f"/v1/orphans/{_segment(orphan_id)}"
        return self._retried(lambda: self._call("GET", path))

    def list_orphans(
        self,
        kind: Optional[str] = None,
        state: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        include: Optional[str] = None,
    ) -> JSON:
        """One page of orphans, ``{"items": [...], "nextCursor": str | None}``."""
        path = "/v1/orphans" + _query({"kind": kind, "state": state, "limit": limit, "cursor": cursor, "include": include})
        return self._retried(lambda: self._call("GET", path))

    def iter_orphans(self, **query: Any) -> Iterator[JSON]:
        """Every orphan matching ``query`` (the arguments of :meth:`list_orphans`), following nextCursor."""
        yield from _paged(lambda cursor: self.list_orphans(**query, cursor=cursor), query.pop("cursor", None))

    def resolve(self, orphan_id: str, resolution: str = "discard") -> JSON:
        """An operator gives an orphan up (POST /v1/orphans/{id}/resolve); returns the orphan.
        Retried: resolving again the same way answers the same orphan."""
        path = f"/v1/orphans/{_segment(orphan_id)}/resolve"
        return self._retried(lambda: self._call("POST", path, {"resolution": resolution}))

    # ---------------------------------------------------------------- fencing and events

    def check_fencing(self, path: str, fencing_token: int) -> JSON:
        """Chubby's CheckSequencer: ``{"valid": bool, "current": [...]}``; refuse the write
        when ``valid`` is false."""
        body = {"path": path, "fencingToken": fencing_token}
        return self._retried(lambda: self._call("POST", "/v1/fencing/check", body))

    def events(
        self,
        prefix: Optional[str] = None,
        types: Optional[Sequence[str]] = None,
        last_event_id: Optional[str] = None,
        *,
        reconnect: bool = True,
        on_open: Optional[Callable[[], None]] = None,
        on_reconnect: Optional[Callable[[str], None]] = None,
        read_timeout: float = 45.0,
    ) -> Iterator[JSON]:
        """The lifecycle event stream (GET /v1/events, Server-Sent Events) of the client's
        namespace, with its token, as a generator of events
        ``{id, type, at, leaseId?, orphanId?, holder?, paths, fencingToken?}``.

        Reconnects with Last-Event-ID when the stream ends or breaks (unless ``reconnect`` is
        False); a refusal (4xx) or a first connection that fails is raised. ``on_open`` is
        called each time the service has answered. Stop by closing the generator (``break``
        out of the loop, or ``.close()``).
        """
        from .events import stream_events

        return stream_events(
            self,
            prefix=prefix,
            types=types,
            last_event_id=last_event_id,
            reconnect=reconnect,
            on_open=on_open,
            on_reconnect=on_reconnect,
            read_timeout=read_timeout,
        )

    # ------------------------------------------------------------------------ held leases

    def lease(
        self,
        resources: Union[Resource, Iterable[Resource]],
        *,
        holder: str,
        ttl_ms: Optional[int] = None,
        action: Optional[Mapping[str, Any]] = None,
        wait_ms: Optional[int] = None,
        request_id: Optional[str] = None,
        max_hold_ms: Optional[int] = None,
        lock_delay_ms: Optional[int] = None,
        margin_ms: float = 0,
        on_renewed: Optional[Callable[[JSON], None]] = None,
    ) -> "LeaseScope":
        """``with client.lease(resources, holder=...) as held:`` acquires (with a request id),
        renews at a third of the ttl while the block runs, and releases on exit: ``completed``,
        ``failed`` if the block raised, ``abandoned`` for :class:`RetryElsewhereError`; nothing
        when the lease was lost (then the :class:`LeaseLostError` is raised from the ``with``).
        See :class:`lease_client.held.HeldLease`."""
        from .held import LeaseScope

        request: dict[str, Any] = {
            "holder": holder,
            "resources": resources,
            "ttl_ms": ttl_ms,
            "action": action,
            "wait_ms": wait_ms,
            "request_id": request_id,
            "max_hold_ms": max_hold_ms,
            "lock_delay_ms": lock_delay_ms,
        }
        return LeaseScope(self, request, margin_ms=margin_ms, on_renewed=on_renewed)

    # --------------------------------------------------------------------------- plumbing

    def _retried(self, call: Callable[[], Any], deadline: Optional[float] = None) -> Any:
        return with_retries(self.retry, call, deadline)

    def _request(self, method: str, path: str, body: Any = None, headers: Optional[Mapping[str, str]] = None) -> urllib.request.Request:
        """A request to ``path`` (``/v1/...``, as the namespace "default" names it) in the
        client's namespace, with its token: every call and the event stream come through here."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        all_headers = dict(self._headers)
        if data is not None:
            all_headers["content-type"] = "application/json"
        if headers:
            all_headers.update(headers)
        return urllib.request.Request(self.base_url + self._path(path), data=data, method=method, headers=all_headers)

    def _path(self, path: str) -> str:
        if self.namespace == DEFAULT_NAMESPACE:
            return path
        return f"/v1/namespaces/{self.namespace}{path[len('/v1'):]}"

    def _open(self, request: urllib.request.Request, timeout: float) -> http.client.HTTPResponse:
        """Opens ``request``; a non-2xx answer is raised as the error it means."""
        try:
            return self._opener.open(request, timeout=timeout)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as answer:
            try:
                text = answer.read().decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                text = ""
            finally:
                answer.close()
            raise error_from_answer(answer.code, text, answer.headers.get("retry-after")) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise BackendUnavailableError(0, f"The lease service at {self.base_url} did not answer: {reason}") from error

    def _call(self, method: str, path: str, body: Any = None, *, wait_ms: int = 0, deadline: Optional[float] = None) -> Any:
        timeout = self.timeout + wait_ms / 1000
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - time.monotonic()))
        response = self._open(self._request(method, path, body), timeout)
        try:
            if response.status == 204:
                return None
            text = response.read().decode("utf-8")
        except (OSError, http.client.HTTPException, socket.timeout) as error:
            raise BackendUnavailableError(0, f"The lease service at {self.base_url} did not answer: {error}") from error
        finally:
            response.close()
        return json.loads(text) if text else None


def _paged(fetch: Callable[[Optional[str]], JSON], cursor: Optional[str]) -> Iterator[JSON]:
    while True:
        page = fetch(cursor)
        yield from page.get("items", [])
        cursor = page.get("nextCursor")
        if not cursor:
            return
