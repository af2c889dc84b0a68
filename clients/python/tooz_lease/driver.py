"""A tooz coordination driver backed by the lease service (lease-api-v1).

URL: ``lease://host:port?timeout=30&token=...&tls=false``

* ``timeout``: seconds a member's leases (locks, group memberships, leaderships) live without a
  heartbeat (the lease ttl), 1..300, default 30. ``heartbeat()`` renews them all with one call
  per 500 leases (POST /v1/holders/{holder}/renew).
* ``token``: a bearer token, when the service has access control on.
* ``tls``: ``true`` to talk https.

What lives where (all under ``tooz/``; names are hex-encoded into path segments):

* a lock ``N``: a lease on ``tooz/locks/h<sha256(N)>`` (exclusive, or shared), holder = the member id;
* a group ``G`` exists while an exclusive lease on ``tooz/groups/<G>/g`` is active (ttl 300 s; renewed
  by the heartbeats of its creator and of its members);
* member ``M`` of ``G``: an exclusive lease on ``tooz/members/<G>/m/h<sha256(M)>``, holder = ``M``;
* the leader of ``G``: the holder of an exclusive lease on ``tooz/leaders/<G>/l``.

Member capabilities are not supported (tooz.NotImplemented): the only place the service keeps
data on a lease is its ``action``, and a lease with an action that expires becomes an orphan
that keeps its paths reserved and is handed to conductors, which is not what a member that timed
out should leave behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import weakref
from typing import Any, Callable, Optional

import tooz
from tooz import coordination
from tooz import locking

from lease_client import LeaseClient
from lease_client.errors import BackendUnavailableError, ConflictError, LeaseLostError, LeaseServiceError

__all__ = ["LeaseDriver", "LeaseLock"]

WAIT_MAX_MS = 60000
GROUP_MARKER_TTL_MS = 300000
_CHUNK = 120  # hex characters per path segment (a segment is at most 128 characters)
_MAX_NAME_BYTES = 180


@contextlib.contextmanager
def _translate_failures():
    try:
        yield
    except BackendUnavailableError as e:
        raise coordination.ToozConnectionError(str(e)) from e
    except ConflictError as e:  # pragma: no cover - callers handle conflicts themselves
        raise tooz.ToozError(str(e)) from e
    except LeaseServiceError as e:
        raise tooz.ToozError("%s (%s)" % (e, e.code)) from e


class _Result(coordination.CoordAsyncResult):
    """The result of a call that has already run (this driver calls the service synchronously)."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._value: Any = None
        self._error: Optional[BaseException] = None
        try:
            with _translate_failures():
                self._value = fn(*args, **kwargs)
        except Exception as e:  # re-raised by get()
            self._error = e

    def get(self, timeout: Optional[float] = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def done(self) -> bool:
        return True


def _to_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _holder_of(member_id: Any) -> str:
    raw = _to_bytes(member_id)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is not None and 1 <= len(text) <= 128 and all(0x20 < ord(c) < 0x7F for c in text) and not text.startswith("hex:"):
        return text
    encoded = "hex:" + raw.hex()
    if len(encoded) > 128:
        raise tooz.ToozError("member id too long for a lease holder (at most 128 printable characters or 62 bytes)")
    return encoded


def _member_of(holder: str) -> bytes:
    if holder.startswith("hex:"):
        return bytes.fromhex(holder[4:])
    return holder.encode("ascii")


def _name_segments(name: Any) -> str:
    raw = _to_bytes(name)
    if not raw:
        raise tooz.ToozError("empty group id")
    if len(raw) > _MAX_NAME_BYTES:
        raise tooz.ToozError("group id longer than %d bytes" % _MAX_NAME_BYTES)
    h = raw.hex()
    return "/".join("x" + h[i:i + _CHUNK] for i in range(0, len(h), _CHUNK))


def _name_from_segments(segments: list) -> bytes:
    return bytes.fromhex("".join(s[1:] for s in segments))


def _hashed(name: Any) -> str:
    return "h" + hashlib.sha256(_to_bytes(name)).hexdigest()


def _active(leases: list) -> list:
    return [lease for lease in leases if lease.get("state") == "active"]


class LeaseLock(locking.Lock):
    """A tooz lock: a lease on ``tooz/locks/h<sha256(name)>`` held by the member.

    Not re-entrant: acquiring an exclusive lock this object already holds returns False (or
    waits, when blocking). Shared acquisitions stack; each release ends the latest one.
    """

    def __init__(self, name: Any, coord: "LeaseDriver") -> None:
        super().__init__(name)
        self._coord = coord
        self.path = "tooz/locks/" + _hashed(name)
        self._leases: list = []
        self._mutex = threading.Lock()

    @property
    def fencing_token(self) -> Optional[int]:
        """The fencing token of the latest lease this lock holds (None when it holds none)."""
        with self._mutex:
            return self._leases[-1]["fencingToken"] if self._leases else None

    def acquire(self, blocking: Any = True, shared: bool = False) -> bool:
        client = self._coord._client
        resource = {"path": self.path, "mode": "shared" if shared else "exclusive"}
        if blocking is True:
            deadline = None
        elif blocking is False or blocking is None:
            deadline = 0.0
        else:
            deadline = time.monotonic() + max(0.0, float(blocking))
        while True:
            if deadline is None:
                wait_ms = WAIT_MAX_MS
            else:
                wait_ms = min(WAIT_MAX_MS, int(max(0.0, deadline - time.monotonic()) * 1000))
            with _translate_failures():
                try:
                    lease = client.acquire(self._coord._holder, resource, ttl_ms=self._coord._ttl_ms, wait_ms=wait_ms or None)
                except ConflictError:
                    lease = None
            if lease is not None:
                with self._mutex:
                    self._leases.append(lease)
                self._coord._locks.add(self)
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def release(self) -> bool:
        with self._mutex:
            if not self._leases:
                return False
            lease = self._leases.pop()
        try:
            with _translate_failures():
                self._coord._client.release(lease["id"])
        except tooz.ToozError as e:
            if isinstance(e.__cause__, LeaseLostError):
                return False  # expired or broken: it was not ours any more
            raise
        return True

    def is_still_owner(self) -> bool:
        with self._mutex:
            lease = self._leases[-1] if self._leases else None
        if lease is None:
            return False
        try:
            with _translate_failures():
                return self._coord._client.get(lease["id"]).get("state") == "active"
        except tooz.ToozError as e:
            if isinstance(e.__cause__, LeaseLostError):
                return False
            raise

    def heartbeat(self) -> bool:
        """Renews the leases this lock holds; False when it holds none (or lost them)."""
        with self._mutex:
            leases = list(self._leases)
        if not leases:
            return False
        ok = True
        for lease in leases:
            try:
                with _translate_failures():
                    self._coord._client.renew(lease["id"])
            except tooz.ToozError as e:
                if not isinstance(e.__cause__, LeaseLostError):
                    raise
                ok = False
        return ok

    def break_(self) -> bool:
        """Revokes (an operator's force-end) every lease holding this lock's path."""
        client = self._coord._client
        with _translate_failures():
            held = _active(client.resource(self.path).get("coveredBy", []))
            broken = False
            for lease in held:
                try:
                    client.revoke(lease["id"])
                    broken = True
                except LeaseLostError:
                    pass
        return broken

    def _forget(self) -> None:
        """Releases whatever this lock holds (the coordinator stops)."""
        while self.release():
            pass


class LeaseDriver(coordination.CoordinationDriverCachedRunWatchers):
    """tooz driver over the lease service. See the module docstring."""

    CHARACTERISTICS = (
        coordination.Characteristics.DISTRIBUTED_ACROSS_THREADS,
        coordination.Characteristics.DISTRIBUTED_ACROSS_PROCESSES,
        coordination.Characteristics.DISTRIBUTED_ACROSS_HOSTS,
        coordination.Characteristics.LINEARIZABLE,
    )

    def __init__(self, member_id: Any, parsed_url: Any, options: dict) -> None:
        super().__init__(member_id, parsed_url, options)
        options = {k: (v[-1] if isinstance(v, list) else v) for k, v in (options or {}).items()}
        timeout = float(options.get("timeout", 30))
        self._ttl_ms = int(min(300000, max(1000, timeout * 1000)))
        scheme = "https" if str(options.get("tls", "false")).lower() in ("1", "true", "yes") else "http"
        host = parsed_url.hostname or "127.0.0.1"
        if ":" in host:
            host = "[%s]" % host
        port = parsed_url.port or 8080
        self._base_url = "%s://%s:%d" % (scheme, host, port)
        self._client = LeaseClient(self._base_url, token=options.get("token"))
        self._holder = _holder_of(member_id)
        self._locks: "weakref.WeakSet[LeaseLock]" = weakref.WeakSet()
        self._leaderships: dict = {}
        self._marker_ids: dict = {}

    # -------------------------------------------------------------------------- lifecycle

    def _start(self) -> None:
        self._leaderships = {}
        self._marker_ids = {}
        self._group_members.clear()
        try:
            with _translate_failures():
                self._client._retried(lambda: self._client._call("GET", "/readyz"))
        except tooz.ToozError as e:
            raise coordination.ToozConnectionError("lease service at %s: %s" % (self._base_url, e)) from e

    def _stop(self) -> None:
        for group_id in list(self._leaderships):
            try:
                self._stand_down(group_id)
            except tooz.ToozError:
                pass
        for lock in list(self._locks):
            try:
                lock._forget()
            except tooz.ToozError:
                pass

    def heartbeat(self) -> float:
        """Renews every lease of this member (and the markers of its groups); returns the
        seconds until the next heartbeat is due (a third of the ttl)."""
        with _translate_failures():
            cursor = None
            while True:
                answer = self._client.renew_holder(self._holder, cursor=cursor)
                cursor = answer.get("nextCursor")
                if not cursor:
                    break
            for group_id in list(self._joined_groups):
                self._renew_marker(group_id)
        return self._ttl_ms / 3000.0

    def _renew_marker(self, group_id: Any) -> None:
        lease_id = self._marker_ids.get(group_id)
        if lease_id is not None:
            try:
                self._client.renew(lease_id)
                return
            except LeaseLostError:
                self._marker_ids.pop(group_id, None)
        marker = self._marker(group_id)
        if marker is not None:
            self._marker_ids[group_id] = marker["id"]
            try:
                self._client.renew(marker["id"])
            except LeaseLostError:
                pass

    # -------------------------------------------------------------------------- paths

    @staticmethod
    def _marker_path(group_id: Any) -> str:
        return "tooz/groups/%s/g" % _name_segments(group_id)

    @staticmethod
    def _members_prefix(group_id: Any) -> str:
        return "tooz/members/%s/m" % _name_segments(group_id)

    def _member_path(self, group_id: Any, member_id: Any) -> str:
        return "%s/%s" % (self._members_prefix(group_id), _hashed(member_id))

    @staticmethod
    def _leader_path(group_id: Any) -> str:
        return "tooz/leaders/%s/l" % _name_segments(group_id)

    def _marker(self, group_id: Any) -> Optional[dict]:
        held = _active(self._client.resource(self._marker_path(group_id)).get("coveredBy", []))
        return held[0] if held else None

    def _require_group(self, group_id: Any) -> dict:
        marker = self._marker(group_id)
        if marker is None:
            raise coordination.GroupNotCreated(group_id)
        return marker

    def _member_lease(self, group_id: Any, member_id: Any) -> Optional[dict]:
        held = _active(self._client.resource(self._member_path(group_id, member_id)).get("coveredBy", []))
        return held[0] if held else None

    def _member_leases(self, group_id: Any) -> list:
        prefix = self._members_prefix(group_id)
        return [lease for lease in self._client.iter_leases(prefix=prefix, state="active") if lease.get("state") == "active"]

    # -------------------------------------------------------------------------- groups

    def create_group(self, group_id: Any) -> _Result:
        def create() -> None:
            try:
                lease = self._client.acquire(self._holder, self._marker_path(group_id), ttl_ms=GROUP_MARKER_TTL_MS)
            except ConflictError:
                raise coordination.GroupAlreadyExist(group_id)
            self._marker_ids[group_id] = lease["id"]

        return _Result(create)

    def get_groups(self) -> _Result:
        def groups() -> list:
            out = []
            for lease in self._client.iter_leases(prefix="tooz/groups", state="active"):
                if lease.get("state") != "active":
                    continue
                for resource in lease.get("resources", []):
                    segments = resource["path"].split("/")
                    if len(segments) >= 4 and segments[0] == "tooz" and segments[1] == "groups" and segments[-1] == "g":
                        out.append(_name_from_segments(segments[2:-1]))
            return out

        return _Result(groups)

    def delete_group(self, group_id: Any) -> _Result:
        def delete() -> None:
            marker = self._require_group(group_id)
            if self._member_leases(group_id):
                raise coordination.GroupNotEmpty(group_id)
            try:
                self._client.release(marker["id"])
            except LeaseLostError:
                raise coordination.GroupNotCreated(group_id)
            self._marker_ids.pop(group_id, None)

        return _Result(delete)

    def _destroy_group(self, group_id: Any) -> None:
        """Ends the group and every membership in it at once (used by tooz's tests)."""
        with _translate_failures():
            for lease in self._member_leases(group_id):
                with contextlib.suppress(LeaseLostError):
                    self._client.revoke(lease["id"])
            marker = self._marker(group_id)
            if marker is not None:
                with contextlib.suppress(LeaseLostError):
                    self._client.revoke(marker["id"])

    def join_group(self, group_id: Any, capabilities: Any = b"") -> _Result:
        if capabilities not in (b"", None, "", {}):
            raise tooz.NotImplemented("the lease driver does not store member capabilities")

        def join() -> None:
            self._require_group(group_id)
            try:
                self._client.acquire(self._holder, self._member_path(group_id, self._member_id), ttl_ms=self._ttl_ms)
            except ConflictError:
                raise coordination.MemberAlreadyExist(group_id, self._member_id)
            self._joined_groups.add(group_id)

        return _Result(join)

    def leave_group(self, group_id: Any) -> _Result:
        def leave() -> None:
            lease = self._member_lease(group_id, self._member_id)
            if lease is None:
                self._joined_groups.discard(group_id)
                self._require_group(group_id)
                raise coordination.MemberNotJoined(group_id, self._member_id)
            try:
                self._client.release(lease["id"])
            except LeaseLostError:
                self._joined_groups.discard(group_id)
                raise coordination.MemberNotJoined(group_id, self._member_id)
            self._joined_groups.discard(group_id)

        return _Result(leave)

    def get_members(self, group_id: Any) -> _Result:
        def members() -> set:
            self._require_group(group_id)
            return {_member_of(lease["holder"]) for lease in self._member_leases(group_id)}

        return _Result(members)

    def get_member_capabilities(self, group_id: Any, member_id: Any) -> _Result:
        raise tooz.NotImplemented("the lease driver does not store member capabilities")

    def get_member_info(self, group_id: Any, member_id: Any) -> _Result:
        raise tooz.NotImplemented("the lease driver does not store member capabilities")

    def update_capabilities(self, group_id: Any, capabilities: Any) -> _Result:
        raise tooz.NotImplemented("the lease driver does not store member capabilities")

    # -------------------------------------------------------------------------- leaders

    def get_leader(self, group_id: Any) -> _Result:
        def leader() -> Optional[bytes]:
            held = _active(self._client.resource(self._leader_path(group_id)).get("coveredBy", []))
            return _member_of(held[0]["holder"]) if held else None

        return _Result(leader)

    def _stand_down(self, group_id: Any) -> None:
        lease = self._leaderships.pop(group_id, None)
        if lease is not None:
            with _translate_failures():
                with contextlib.suppress(LeaseLostError):
                    self._client.release(lease["id"])

    def stand_down_group_leader(self, group_id: Any) -> None:
        self._stand_down(group_id)

    def _run_elections(self) -> list:
        result = []
        for group_id in list(self._hooks_elected_leader):
            hooks = self._hooks_elected_leader.get(group_id)
            if not hooks:
                continue
            with _translate_failures():
                lease = self._leaderships.get(group_id)
                if lease is not None:
                    try:
                        if self._client.get(lease["id"]).get("state") == "active":
                            continue
                    except LeaseLostError:
                        pass
                    self._leaderships.pop(group_id, None)
                try:
                    lease = self._client.acquire(self._holder, self._leader_path(group_id), ttl_ms=self._ttl_ms)
                except ConflictError:
                    continue
            self._leaderships[group_id] = lease
            result.extend(hooks.run(coordination.LeaderElected(group_id, self._member_id)))
        return result

    def run_watchers(self, timeout: Optional[float] = None) -> list:
        result = super().run_watchers(timeout=timeout)
        result.extend(self._run_elections())
        return result

    # -------------------------------------------------------------------------- locks

    def get_lock(self, name: Any) -> LeaseLock:
        return LeaseLock(name, self)
