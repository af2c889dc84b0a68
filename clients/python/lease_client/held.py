"""A lease while its holder works: the heartbeat thread that renews it at a third of its ttl,
the watchdog that declares it lost, and the progress checkpoint that rides on the next renew.

Mirrors src/client/held-lease.ts and with-lease.ts. The contract's clock rule is the whole
design: a holder must treat its lease as lost ``ttlMs`` after it *sent* the request that
granted or last renewed it. So every renew remembers when it left (``time.monotonic()``),
and only a confirmed renew moves the deadline, to that send time plus the time the service
said was left (``expiresInMs``, which already stops at holdDeadline). ``lost`` is set at that
deadline, or at once on a 410 or a 404, and is never cleared.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional

from .errors import BackendUnavailableError, LeaseLostError, LeaseServiceError

if TYPE_CHECKING:  # pragma: no cover
    from .client import JSON, LeaseClient

__all__ = ["HeldLease", "LeaseScope", "RetryElsewhereError"]

#: The pause between renew attempts after one failed for a reason that may pass (seconds).
RETRY_PAUSE_S = 0.1


class RetryElsewhereError(Exception):
    """Raised by the work to give it up for another conductor: the lease is released
    ``abandoned``, so a lease with an action becomes an orphan at once (carrying the last
    checkpoint) instead of waiting for its ttl to run out."""

    def __init__(self, message: str = "The work asked to be retried elsewhere") -> None:
        super().__init__(message)


class HeldLease:
    """A granted lease kept alive by a heartbeat thread.

    :param client: the client to renew and release with.
    :param lease: the lease as granted.
    :param sent_at: ``time.monotonic()`` when the acquire or claim that granted it was sent.
    :param margin_ms: declare the lease lost this long before the deadline (time to stop work).
    :param on_renewed: called (on the heartbeat thread) after each confirmed renewal.
    """

    def __init__(
        self,
        client: "LeaseClient",
        lease: "JSON",
        sent_at: float,
        *,
        margin_ms: float = 0,
        on_renewed: Optional[Callable[["JSON"], None]] = None,
    ) -> None:
        self._client = client
        self._current = lease
        self._sent_at = sent_at
        self._margin = margin_ms / 1000
        self._on_renewed = on_renewed
        #: Monotonic time after which the lease must be presumed lost.
        self._deadline = sent_at + lease["expiresInMs"] / 1000
        self._pending: Optional[dict[str, Any]] = None
        self._lock = threading.Condition()
        self._stopped = threading.Event()
        #: Set as soon as the lease must be presumed lost; never cleared.
        self.lost = threading.Event()
        #: Why it was lost (a LeaseLostError, or the service's refusal of a renew).
        self.lost_reason: Optional[LeaseServiceError] = None
        #: Set by a Conductor being stopped: finish up or raise, the orphan is handed back.
        self.cancelled = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None
        self._watchdog: Optional[threading.Thread] = None

    # ------------------------------------------------------------------------- properties

    @property
    def lease(self) -> "JSON":
        """The lease as of the last confirmed renewal."""
        return self._current

    @property
    def id(self) -> str:
        """The lease id."""
        return str(self._current["id"])

    @property
    def fencing_token(self) -> int:
        """The fencing token to send with every write the lease protects."""
        return int(self._current["fencingToken"])

    @property
    def valid_until(self) -> float:
        """``time.monotonic()`` value after which the lease must be presumed lost."""
        return self._deadline

    def checkpoint(self, progress: Any) -> None:
        """Records how far the work got; it goes out with the next heartbeat (a later one replaces it)."""
        with self._lock:
            self._pending = {"progress": progress}

    def raise_if_lost(self) -> None:
        """Raises the reason the lease was lost, if it was."""
        if self.lost.is_set() and self.lost_reason is not None:
            raise self.lost_reason

    # ------------------------------------------------------------------------- life cycle

    def start(self) -> None:
        """Starts the heartbeat and watchdog threads (daemons)."""
        self._watchdog = threading.Thread(target=self._watch, name=f"lease-watchdog-{self.id}", daemon=True)
        self._heartbeat = threading.Thread(target=self._beat, name=f"lease-heartbeat-{self.id}", daemon=True)
        self._watchdog.start()
        self._heartbeat.start()

    def stop(self, *, flush_progress: bool = False) -> None:
        """Stops the heartbeat and waits until no renew is in flight; sends a checkpoint still
        waiting when asked to (so an abandoned action hands its last progress to the claimer)."""
        self._stopped.set()
        with self._lock:
            self._lock.notify_all()
        for thread in (self._heartbeat, self._watchdog):
            if thread is not None and thread is not threading.current_thread():
                thread.join()
        if flush_progress and self._pending is not None and not self.lost.is_set():
            try:
                self._renew_once()
            except LeaseServiceError:
                pass

    def end(self, outcome: str) -> Optional["JSON"]:
        """Stops the heartbeat, then releases with ``outcome`` unless the lease is already
        lost; returns the tombstone (None when lost)."""
        self.stop(flush_progress=outcome == "abandoned")
        if self.lost.is_set():
            return None
        return self._client.release(self.id, outcome)

    # ---------------------------------------------------------------------------- threads

    def _beat(self) -> None:
        interval = self._current["ttlMs"] / 3000
        # Timed from the send, like the deadline: a grant that took long to arrive (a claim's
        # long poll, a wait_ms acquire) is renewed at once.
        next_at = self._sent_at + interval
        while not self._stopped.is_set() and not self.lost.is_set():
            if self._stopped.wait(max(0.0, next_at - time.monotonic())):
                return
            sent_at = time.monotonic()
            try:
                self._renew_once()
                next_at = sent_at + interval
            except LeaseLostError as error:
                if not self._stopped.is_set():
                    self._lose(error)
                return
            except BackendUnavailableError:
                next_at = time.monotonic() + RETRY_PAUSE_S
            except LeaseServiceError as error:
                # A renew the service refuses (e.g. a progress over 16 KiB) will be refused
                # again: the holder cannot keep this lease, so say so now.
                if not self._stopped.is_set():
                    self._lose(error)
                return

    def _renew_once(self) -> None:
        """One renew (retried by the client until the deadline), carrying the pending checkpoint."""
        sent_at = time.monotonic()
        with self._lock:
            sending = self._pending
        lease = self._client.renew(
            self.id,
            progress=sending["progress"] if sending is not None else None,
            _deadline=self._deadline,
        )
        with self._lock:
            if self.lost.is_set():
                return
            self._current = lease
            self._deadline = max(self._deadline, sent_at + lease["expiresInMs"] / 1000)
            if self._pending is sending:
                self._pending = None
            self._lock.notify_all()
        if self._on_renewed is not None:
            self._on_renewed(lease)

    def _watch(self) -> None:
        with self._lock:
            while not self._stopped.is_set() and not self.lost.is_set():
                remaining = self._deadline - self._margin - time.monotonic()
                if remaining <= 0:
                    margin = f" (less a margin of {self._margin * 1000:g} ms)" if self._margin > 0 else ""
                    self._lose_locked(
                        LeaseLostError(
                            0,
                            "renewal_overdue",
                            f"No renewal of lease {self.id} was confirmed within its ttl of being sent{margin}: it must be presumed lost",
                        )
                    )
                    return
                self._lock.wait(remaining)

    def _lose(self, reason: LeaseServiceError) -> None:
        with self._lock:
            self._lose_locked(reason)

    def _lose_locked(self, reason: LeaseServiceError) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
            self._lock.notify_all()


def hold_while_outcome(held: HeldLease, error: Optional[BaseException]) -> str:
    """The release outcome for work that ended with ``error`` (None: it returned)."""
    if error is None:
        return "completed"
    if isinstance(error, RetryElsewhereError) or (held.cancelled.is_set() and not held.lost.is_set()):
        return "abandoned"
    return "failed"


def finish(held: HeldLease, error: Optional[BaseException]) -> None:
    """Ends ``held`` as work that ended with ``error`` does (with_lease.ts' holdWhile): releases
    with the outcome it means, or raises the LeaseLostError when the lease was lost meanwhile."""
    if error is not None:
        # A release that fails here is not the news: the work's error is. The lease then runs
        # out its ttl, and one with an action becomes an orphan as if abandoned.
        try:
            held.end(hold_while_outcome(held, error))
        except LeaseServiceError:
            pass
        held.raise_if_lost()
        return
    if held.lost.is_set():
        held.stop()
        held.raise_if_lost()
        return
    held.end("completed")


class LeaseScope:
    """The context manager :meth:`LeaseClient.lease` returns; ``__enter__`` gives the :class:`HeldLease`."""

    def __init__(
        self,
        client: "LeaseClient",
        request: dict[str, Any],
        *,
        margin_ms: float = 0,
        on_renewed: Optional[Callable[["JSON"], None]] = None,
    ) -> None:
        self._client = client
        self._request = request
        self._margin_ms = margin_ms
        self._on_renewed = on_renewed
        self.held: Optional[HeldLease] = None

    def __enter__(self) -> HeldLease:
        sent_at = time.monotonic()
        lease = self._client.acquire(**self._request)
        self.held = HeldLease(self._client, lease, sent_at, margin_ms=self._margin_ms, on_renewed=self._on_renewed)
        self.held.start()
        return self.held

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        assert self.held is not None
        finish(self.held, exc)
        # Returning None lets the block's own exception propagate.
