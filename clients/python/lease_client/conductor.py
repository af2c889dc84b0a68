"""Conductor: a worker loop that takes over the actions dead holders left half-done.

Mirrors src/client/conductor.ts. Each of ``concurrency`` threads long-polls
POST /v1/orphans/claim for the given kinds and runs ``handler(held, orphan)`` under the
claim's lease, with :meth:`LeaseClient.lease` semantics (heartbeat, ``held.lost``, release
``completed`` on return, ``failed`` on an error, ``abandoned`` on RetryElsewhereError). The
orphan's ``progress`` is the dead holder's last checkpoint: resume from it, after checking
what the running step did.
"""

from __future__ import annotations

import random
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .errors import BackendUnavailableError, LeaseServiceError
from .held import HeldLease, finish

if TYPE_CHECKING:  # pragma: no cover
    from .client import JSON, LeaseClient

__all__ = ["Conductor"]

Handler = Callable[[HeldLease, "JSON"], Any]
ErrorHandler = Callable[[BaseException, Optional["JSON"]], None]


def _print_error(error: BaseException, orphan: Optional["JSON"]) -> None:
    where = f" (orphan {orphan.get('id')})" if orphan else ""
    print(f"conductor{where}:", "".join(traceback.format_exception(error)), file=sys.stderr)


class Conductor:
    """Claims orphans of ``kinds`` (all kinds when None) as ``holder`` and runs ``handler``.

    :param ttl_ms: ttl of a claim's lease (default 15000, the service's default).
    :param claim_wait_ms: how long one claim waits for an orphan (the long poll); at most a
        third of ``ttl_ms``, which is the default: the lease is timed from when the claim was
        sent, and the first heartbeat, due a third of the ttl after that, must find it alive.
    :param concurrency: orphans handled at once (threads). Default 1.
    :param on_error: called with a handler's error, a lost lease or a failing claim (and the
        orphan, when there was one); the loop goes on. Default: print to stderr.
    :param margin_ms: passed to each claim's :class:`HeldLease`.
    """

    def __init__(
        self,
        client: "LeaseClient",
        holder: str,
        kinds: Optional[Sequence[str]],
        handler: Handler,
        *,
        ttl_ms: int = 15000,
        claim_wait_ms: Optional[int] = None,
        concurrency: int = 1,
        on_error: Optional[ErrorHandler] = None,
        margin_ms: float = 0,
    ) -> None:
        self.client = client
        self.holder = holder
        self.kinds = list(kinds) if kinds is not None else None
        self.handler = handler
        self.ttl_ms = ttl_ms
        self.claim_wait_ms = claim_wait_ms if claim_wait_ms is not None else ttl_ms // 3
        if self.claim_wait_ms > ttl_ms / 3:
            raise ValueError(
                f"claim_wait_ms ({self.claim_wait_ms}) must be at most a third of ttl_ms ({ttl_ms}): the wait counts against the claim's lease"
            )
        self.concurrency = concurrency
        self.on_error: ErrorHandler = on_error or _print_error
        self.margin_ms = margin_ms
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running: set[HeldLease] = set()
        self._lock = threading.Lock()

    def start(self) -> "Conductor":
        """Starts the claim threads (daemons); returns at once."""
        if self._threads:
            raise RuntimeError("The conductor is already started")
        for i in range(self.concurrency):
            thread = threading.Thread(target=self._slot, name=f"conductor-{self.holder}-{i}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def run(self) -> None:
        """Runs in the calling thread until :meth:`stop` is called from another (concurrency 1)."""
        self._slot()

    def stop(self, grace: float = 10.0) -> None:
        """Stops claiming and waits for running handlers to finish. After ``grace`` seconds
        their ``held.cancelled`` is set, and a handler that then raises has its orphan handed
        back at once (released ``abandoned``). A claim long poll in flight is waited for (at
        most ``claim_wait_ms``); should it be granted, its orphan is handed back at once."""
        self._stopping.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            while thread.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    with self._lock:
                        for held in self._running:
                            held.cancelled.set()
                    thread.join()
                else:
                    thread.join(remaining)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    def _slot(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            sent_at = time.monotonic()
            try:
                claim = self.client.claim_orphan(self.holder, kinds=self.kinds, ttl_ms=self.ttl_ms, wait_ms=self.claim_wait_ms)
                failures = 0
            except LeaseServiceError as error:
                if self._stopping.is_set():
                    return
                self.on_error(error, None)
                # Back off (full jitter, up to 5 s) so that a service that is down is not hammered.
                pause = random.random() * min(5.0, 0.1 * 2**failures)
                failures += 1
                if isinstance(error, BackendUnavailableError) and error.retry_after_ms:
                    pause = error.retry_after_ms / 1000
                self._stopping.wait(pause)
                continue
            if claim is None:
                continue
            orphan, lease = claim["orphan"], claim["lease"]
            held = HeldLease(self.client, lease, sent_at, margin_ms=self.margin_ms)
            if self._stopping.is_set():
                # Claimed while stopping: hand it back now rather than when its ttl runs out.
                try:
                    self.client.release(held.id, "abandoned")
                except LeaseServiceError as error:
                    self.on_error(error, orphan)
                return
            self._hold(held, orphan)

    def _hold(self, held: HeldLease, orphan: "JSON") -> None:
        with self._lock:
            self._running.add(held)
        held.start()
        try:
            error: Optional[BaseException] = None
            try:
                self.handler(held, orphan)
            except Exception as raised:  # noqa: BLE001 - the loop goes on; on_error is told
                error = raised
            try:
                finish(held, error)
            except LeaseServiceError as lost:
                error = lost
            if error is not None:
                self.on_error(error, orphan)
        finally:
            with self._lock:
                self._running.discard(held)
