"""Retries with exponential backoff and full jitter, as src/client/backoff.ts does.

Attempt n waits a random time in [0, min(max, base * 2**(n-1))], or the server's Retry-After
plus a random part of base when it sent one, so clients that failed together do not come
back together. Only :class:`BackendUnavailableError` is retried.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

from .errors import BackendUnavailableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts``: tries in all, the first included (1: no retry). Times in seconds."""

    attempts: int = 4
    base: float = 0.1
    max: float = 2.0


def with_retries(policy: RetryPolicy, call: Callable[[], T], deadline: Optional[float] = None) -> T:
    """Runs ``call`` until it succeeds, fails with anything but BackendUnavailableError, runs
    out of attempts, or the monotonic ``deadline`` would pass during the pause."""
    attempt = 1
    while True:
        try:
            return call()
        except BackendUnavailableError as error:
            if attempt >= policy.attempts:
                raise
            if error.retry_after_ms is not None:
                wait = error.retry_after_ms / 1000 + random.random() * policy.base
            else:
                wait = random.random() * min(policy.max, policy.base * 2 ** (attempt - 1))
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise
            time.sleep(wait)
            attempt += 1
