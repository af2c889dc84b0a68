"""The Python client against a real lease service, whose base URL is $LEASE_URL.

Run: LEASE_URL=http://127.0.0.1:8080 PYTHONPATH=clients/python python3 -m unittest discover -s clients/python/tests -v
Waits are bounded; tests use ttl 1000 ms (the service's TTL_MIN_MS default) and expect the
service's reaper to run often (REAPER_INTERVAL_MS=100 in test/python-client.test.ts).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable, Optional

from lease_client import (
    BackendUnavailableError,
    Conductor,
    ConflictError,
    HeldLease,
    LeaseClient,
    LeaseLostError,
    LeaseServiceError,
    parse_frames,
)

LEASE_URL = os.environ.get("LEASE_URL", "")
HERE = os.path.dirname(os.path.abspath(__file__))


def unique(name: str) -> str:
    return f"py/{name}-{uuid.uuid4().hex[:12]}"


def status_of(path: str) -> int:
    """The status of a plain GET of ``path`` at the service, without the client."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(LEASE_URL + path, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as answer:
        answer.close()
        return answer.code


def wait_for(probe: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.025)


class Offline(unittest.TestCase):
    """What needs no service."""

    def test_sse_frames(self) -> None:
        lines = iter(["retry: 2000\n", "\n", ": keepalive\n", "\n", "id: 1-0\n", "event: granted\n", 'data: {"a":\n', "data: 1}\n", "\n"])
        frames = list(parse_frames(lines))
        self.assertEqual(frames, [{"id": "1-0", "event": "granted", "data": '{"a":\n1}'}])

    def test_unreachable_is_backend_unavailable_with_status_0(self) -> None:
        client = LeaseClient("http://127.0.0.1:9", timeout=1, retries=1, backoff_base=0.01)
        with self.assertRaises(BackendUnavailableError) as caught:
            client.get("x")
        self.assertEqual(caught.exception.status, 0)
        self.assertEqual(caught.exception.code, "unreachable")

    def test_a_namespace_the_service_would_refuse_raises_value_error(self) -> None:
        for namespace in ["", "Tenant-X", "-x", "tenant_x", "a/b", "a" * 64]:
            with self.assertRaises(ValueError, msg=repr(namespace)):
                LeaseClient("http://127.0.0.1:9", namespace=namespace)
        self.assertEqual(LeaseClient("http://127.0.0.1:9", "x" + "-" * 62).namespace, "x" + "-" * 62)
        self.assertEqual(LeaseClient("http://127.0.0.1:9").namespace, "default")


@unittest.skipUnless(LEASE_URL, "LEASE_URL is not set")
class AgainstService(unittest.TestCase):
    client: LeaseClient

    @classmethod
    def setUpClass(cls) -> None:
        cls.client = LeaseClient(LEASE_URL, timeout=5)

    def test_acquire_renew_release_round_trip(self) -> None:
        path = unique("round")
        lease = self.client.acquire("py-round", [path], ttl_ms=5000, action={"kind": unique("k")})
        self.assertEqual(lease["state"], "active")
        self.assertEqual(lease["resources"], [{"path": path, "mode": "exclusive"}])
        self.assertIsInstance(lease["fencingToken"], int)
        renewed = self.client.renew(lease["id"], ttl_ms=6000, progress={"step": 2})
        self.assertEqual(renewed["id"], lease["id"])
        self.assertEqual(renewed["ttlMs"], 6000)
        self.assertEqual(renewed["action"]["progress"], {"step": 2})
        self.assertEqual(self.client.get(lease["id"])["id"], lease["id"])
        tombstone = self.client.release(lease["id"])
        self.assertEqual(tombstone["state"], "released")
        self.assertEqual(tombstone["outcome"], "completed")
        # A repeat of the release answers the same tombstone (it is retried safely).
        self.assertEqual(self.client.release(lease["id"])["state"], "released")

    def test_request_id_makes_acquire_idempotent(self) -> None:
        path = unique("rid")
        first = self.client.acquire("py-rid", [path], ttl_ms=5000, request_id="r-1")
        again = self.client.acquire("py-rid", [path], ttl_ms=5000, request_id="r-1")
        self.assertEqual(first["id"], again["id"])
        self.client.release(first["id"])

    def test_conflict_error_lists_conflicts(self) -> None:
        path = unique("conflict")
        held = self.client.acquire("py-a", [path], ttl_ms=5000)
        try:
            with self.assertRaises(ConflictError) as caught:
                self.client.acquire("py-b", [f"{path}/below"], ttl_ms=5000)
            error = caught.exception
            self.assertEqual((error.status, error.code), (409, "conflict"))
            self.assertEqual(len(error.conflicts), 1)
            self.assertEqual(error.conflicts[0]["leaseId"], held["id"])
            self.assertEqual(error.conflicts[0]["holder"], "py-a")
            self.assertEqual(error.conflicts[0]["path"], path)
        finally:
            self.client.release(held["id"])

    def test_lease_lost_after_release_and_for_unknown_id(self) -> None:
        lease = self.client.acquire("py-lost", [unique("lost")], ttl_ms=5000)
        self.client.release(lease["id"], "failed")
        with self.assertRaises(LeaseLostError) as gone:
            self.client.renew(lease["id"])
        self.assertEqual(gone.exception.status, 410)
        self.assertEqual(gone.exception.code, "lease_released")
        assert gone.exception.tombstone is not None
        self.assertEqual(gone.exception.tombstone["id"], lease["id"])
        self.assertEqual(gone.exception.tombstone["outcome"], "failed")
        with self.assertRaises(LeaseLostError) as unknown:
            self.client.get("no-such-lease-" + uuid.uuid4().hex)
        self.assertEqual((unknown.exception.status, unknown.exception.code), (404, "lease_not_found"))
        self.assertIsNone(unknown.exception.tombstone)

    def test_other_problems_are_lease_service_errors(self) -> None:
        with self.assertRaises(LeaseServiceError) as caught:
            self.client.acquire("py-bad", ["/not a path"], ttl_ms=5000)
        self.assertNotIsInstance(caught.exception, (ConflictError, LeaseLostError, BackendUnavailableError))
        self.assertEqual((caught.exception.status, caught.exception.code), (400, "invalid_resource"))

    def test_revoke_and_list_with_cursor_paging(self) -> None:
        holder = "py-list-" + uuid.uuid4().hex[:8]
        ids = {self.client.acquire(holder, [unique("list")], ttl_ms=5000)["id"] for _ in range(3)}
        first = self.client.list(holder=holder, limit=2)
        self.assertEqual(len(first["items"]), 2)
        self.assertIsNotNone(first["nextCursor"])
        self.assertEqual({lease["id"] for lease in self.client.iter_leases(holder=holder, limit=1)}, ids)
        for lease_id in ids:
            self.assertEqual(self.client.revoke(lease_id)["state"], "revoked")
        self.assertEqual(list(self.client.iter_leases(holder=holder)), [])

    def test_heartbeat_keeps_a_1000_ms_lease_alive(self) -> None:
        renewals: list[float] = []
        with self.client.lease([unique("beat")], holder="py-beat", ttl_ms=1000, on_renewed=lambda _: renewals.append(time.monotonic())) as held:
            started = time.monotonic()
            time.sleep(2.5)
            self.assertFalse(held.lost.is_set(), held.lost_reason)
            self.assertEqual(self.client.get(held.id)["state"], "active")
            self.assertGreaterEqual(len(renewals), 5, renewals)
            self.assertGreater(held.valid_until, time.monotonic())
            lease_id = held.id
        self.assertLess(renewals[0] - started, 0.5)
        with self.assertRaises(LeaseLostError) as ended:
            self.client.get(lease_id)
        assert ended.exception.tombstone is not None
        self.assertEqual(ended.exception.tombstone["outcome"], "completed")

    def test_checkpoint_rides_the_next_renew(self) -> None:
        with self.client.lease([unique("ckpt")], holder="py-ckpt", ttl_ms=1000, action={"kind": unique("k")}) as held:
            held.checkpoint({"step": "copied"})
            wait_for(lambda: (self.client.get(held.id)["action"] or {}).get("progress") == {"step": "copied"}, 3, "the checkpoint")

    def test_lost_is_set_quickly_when_revoked(self) -> None:
        other = LeaseClient(LEASE_URL)
        with self.assertRaises(LeaseLostError) as caught:
            with self.client.lease([unique("revoked")], holder="py-revoked", ttl_ms=3000) as held:
                other.revoke(held.id)
                revoked_at = time.monotonic()
                self.assertTrue(held.lost.wait(2.0), "held.lost was not set")
                # A renew is due within a third of the ttl; the 410 on it sets lost at once.
                self.assertLess(time.monotonic() - revoked_at, 1.5)
                self.assertIsInstance(held.lost_reason, LeaseLostError)
        self.assertEqual(caught.exception.code, "lease_revoked")
        assert caught.exception.tombstone is not None
        self.assertEqual(caught.exception.tombstone["state"], "revoked")

    def test_lost_is_set_at_the_deadline_without_a_confirmed_renewal(self) -> None:
        # A client whose renewals cannot reach the service: the watchdog sets lost at the ttl.
        lease = self.client.acquire("py-overdue", [unique("overdue")], ttl_ms=1000)
        sent_at = time.monotonic()
        dead = LeaseClient("http://127.0.0.1:9", timeout=0.2, retries=0)
        held = HeldLease(dead, lease, sent_at)
        held.start()
        try:
            self.assertTrue(held.lost.wait(3.0))
            self.assertGreaterEqual(time.monotonic() - sent_at, 0.99)
            assert held.lost_reason is not None
            self.assertEqual(held.lost_reason.code, "renewal_overdue")
        finally:
            held.stop()

    def test_an_exception_in_the_block_releases_failed(self) -> None:
        ids: list[str] = []
        with self.assertRaises(RuntimeError):
            with self.client.lease([unique("fail")], holder="py-fail", ttl_ms=1000) as held:
                ids.append(held.id)
                raise RuntimeError("boom")
        with self.assertRaises(LeaseLostError) as caught:
            self.client.get(ids[0])
        self.assertEqual(caught.exception.status, 410)
        assert caught.exception.tombstone is not None
        self.assertEqual(caught.exception.tombstone["state"], "released")
        self.assertEqual(caught.exception.tombstone["outcome"], "failed")

    def test_claim_orphan_of_an_expired_action_lease(self) -> None:
        kind = unique("kind")
        path = unique("orphan")
        self.assertIsNone(self.client.claim_orphan("py-claimer", kinds=[kind], ttl_ms=5000, wait_ms=0))
        dead = self.client.acquire("py-dead", [path], ttl_ms=1000, action={"kind": kind, "payload": {"n": 1}})
        claim = self.client.claim_orphan("py-claimer", kinds=[kind], ttl_ms=5000, wait_ms=5000)
        assert claim is not None
        orphan, lease = claim["orphan"], claim["lease"]
        self.assertEqual(orphan["lastLeaseId"], dead["id"])
        self.assertEqual(orphan["lastFencingToken"], dead["fencingToken"])
        self.assertEqual(orphan["action"]["kind"], kind)
        self.assertGreater(lease["fencingToken"], dead["fencingToken"])
        self.assertEqual(lease["action"]["attempt"], 2)
        self.assertEqual(lease["holder"], "py-claimer")
        self.client.release(lease["id"], "completed")
        self.assertEqual(self.client.get_orphan(orphan["id"])["state"], "resolved")

    def test_resolve_discards_an_orphan(self) -> None:
        kind = unique("kind")
        lease = self.client.acquire("py-res", [unique("resolve")], ttl_ms=5000, action={"kind": kind})
        self.client.release(lease["id"], "abandoned")
        orphans = wait_for(lambda: self.client.list_orphans(kind=kind)["items"], 5, "the orphan")
        resolved = self.client.resolve(orphans[0]["id"], "discard")
        self.assertEqual(resolved["state"], "resolved")

    def test_events_yield_granted_for_a_new_lease(self) -> None:
        prefix = unique("events")
        opened = threading.Event()
        seen: "queue.Queue[dict[str, Any]]" = queue.Queue()

        def watch() -> None:
            for event in self.client.events(prefix=prefix, types=["granted", "released"], on_open=opened.set):
                seen.put(event)
                if event["type"] == "released":
                    break

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.assertTrue(opened.wait(5), "the event stream did not open")
        lease = self.client.acquire("py-events", [f"{prefix}/a"], ttl_ms=5000)
        self.client.release(lease["id"])
        granted = seen.get(timeout=5)
        self.assertEqual(granted["type"], "granted")
        self.assertEqual(granted["leaseId"], lease["id"])
        self.assertEqual(granted["paths"], [f"{prefix}/a"])
        self.assertEqual(granted["fencingToken"], lease["fencingToken"])
        released = seen.get(timeout=5)
        self.assertEqual(released["type"], "released")
        watcher.join(5)
        self.assertFalse(watcher.is_alive())
        # Resuming after the granted event replays the release, and only it.
        replay = self.client.events(prefix=prefix, last_event_id=granted["id"], reconnect=False)
        try:
            self.assertEqual(next(replay)["id"], released["id"])
        finally:
            replay.close()

    def test_a_namespace_is_a_world_of_its_own_for_calls_and_events(self) -> None:
        tenant = LeaseClient(LEASE_URL, namespace="tenant-x", timeout=5)
        path = unique("namespace")
        opened = threading.Event()
        seen: "queue.Queue[dict[str, Any]]" = queue.Queue()

        def watch() -> None:
            for event in tenant.events(prefix=path, types=["granted"], on_open=opened.set):
                seen.put(event)
                break

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        self.assertTrue(opened.wait(5), "the event stream did not open")
        # The same path in both namespaces: each grants it, neither sees the other's lease.
        plain = self.client.acquire("py-ns", [path], ttl_ms=5000)
        lease = tenant.acquire("py-ns", [path], ttl_ms=5000)
        self.assertEqual(status_of(f"/v1/namespaces/tenant-x/leases/{lease['id']}"), 200)
        self.assertEqual(status_of(f"/v1/leases/{lease['id']}"), 404)
        self.assertEqual(status_of(f"/v1/leases/{plain['id']}"), 200)
        self.assertEqual(status_of(f"/v1/namespaces/tenant-x/leases/{plain['id']}"), 404)
        self.assertEqual(tenant.get(lease["id"])["fencingToken"], lease["fencingToken"])
        with self.assertRaises(LeaseLostError) as caught:
            self.client.get(lease["id"])
        self.assertEqual((caught.exception.status, caught.exception.code), (404, "lease_not_found"))
        with self.assertRaises(LeaseLostError):
            tenant.get(plain["id"])
        granted = seen.get(timeout=5)
        self.assertEqual(granted["leaseId"], lease["id"], "the stream of tenant-x shows its grant, not the default one's")
        watcher.join(5)
        tenant.release(lease["id"])
        self.client.release(plain["id"])

    def test_check_fencing_valid_and_invalid(self) -> None:
        path = unique("fence")
        lease = self.client.acquire("py-fence", [path], ttl_ms=5000)
        check = self.client.check_fencing(f"{path}/disk", lease["fencingToken"])
        self.assertTrue(check["valid"])
        self.assertEqual(check["current"][0]["leaseId"], lease["id"])
        self.assertFalse(self.client.check_fencing(path, lease["fencingToken"] - 1)["valid"])
        self.client.release(lease["id"])
        self.assertFalse(self.client.check_fencing(path, lease["fencingToken"])["valid"])

    def test_a_conductor_takes_over_from_a_holder_killed_with_sigkill(self) -> None:
        kind = unique("kind")
        path = unique("sigkill")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.path.dirname(HERE), os.environ.get("PYTHONPATH")]))}
        child = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "holder_script.py"), LEASE_URL, path, kind, "py-doomed"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            line = child.stdout.readline() if child.stdout else ""
            if not line:
                child.kill()
                self.fail(f"the holder printed nothing: {child.stderr.read() if child.stderr else ''}")
            doomed = json.loads(line)
            self.assertEqual(doomed["action"]["progress"], {"step": "half-done"})
            os.kill(child.pid, signal.SIGKILL)
            child.wait(5)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(5)
            for stream in (child.stdout, child.stderr):
                if stream:
                    stream.close()
        self.assertEqual(child.returncode, -signal.SIGKILL)

        jobs: "queue.Queue[tuple[int, dict[str, Any], Optional[dict[str, Any]]]]" = queue.Queue()
        errors: list[BaseException] = []

        def handler(held: HeldLease, orphan: dict[str, Any]) -> None:
            check = self.client.check_fencing(path, held.fencing_token)
            jobs.put((held.fencing_token, orphan, check))

        conductor = Conductor(self.client, "py-conductor", [kind], handler, ttl_ms=1500, on_error=lambda e, _: errors.append(e)).start()
        try:
            token, orphan, check = jobs.get(timeout=8)
        finally:
            conductor.stop(grace=5)
        self.assertEqual(errors, [])
        self.assertEqual(orphan["lastLeaseId"], doomed["id"])
        self.assertEqual(orphan["lastFencingToken"], doomed["fencingToken"])
        self.assertEqual(orphan["progress"], {"step": "half-done"})
        self.assertGreater(token, doomed["fencingToken"])
        assert check is not None
        self.assertTrue(check["valid"])
        self.assertFalse(self.client.check_fencing(path, doomed["fencingToken"])["valid"])
        # The handler returned: the claim's lease was released completed, the orphan resolved.
        wait_for(lambda: self.client.get_orphan(orphan["id"])["state"] == "resolved", 5, "the orphan to be resolved")


if __name__ == "__main__":
    unittest.main()
