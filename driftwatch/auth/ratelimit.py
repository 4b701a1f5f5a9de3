"""A token bucket per key: for ingestion, records per second per API key, with a burst
allowance; for the dashboard's sign-in, failed attempts per client address.

Per process: with N replicas behind a load balancer a key may send up to N times the rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Hashable

MAX_BUCKETS = 10_000  # past this many keys, the full buckets (idle keys) are dropped


class RateLimiter:
    def __init__(self, rate: float, burst_seconds: float = 2.0) -> None:
        self.rate = rate  # records a second; 0 or less: no limit
        self.capacity = rate * burst_seconds
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate)

    def take(self, key: Hashable, cost: int, now: float | None = None) -> int | None:
        """Spend ``cost`` records of the key's allowance; None if allowed, else the whole
        seconds to wait before the batch would be."""
        return self._ask(key, cost, now, spend=True)

    def wait(self, key: Hashable, cost: int = 1, now: float | None = None) -> int | None:
        """Like ``take`` but spends nothing: None if ``cost`` would be allowed now."""
        return self._ask(key, cost, now, spend=False)

    def _ask(self, key: Hashable, cost: int, now: float | None, *, spend: bool) -> int | None:
        if self.rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        # a batch larger than the burst is let through once the bucket is full
        needed = min(float(cost), self.capacity)
        with self._lock:
            tokens = self._tokens(key, now)
            if tokens >= needed:
                if spend:
                    self._buckets[key] = (tokens - needed, now)
                    self._prune(now)
                return None
            if spend:
                self._buckets[key] = (tokens, now)
        return max(1, math.ceil((needed - tokens) / self.rate))

    def refund(self, key: Hashable, cost: int, now: float | None = None) -> None:
        """Give back what ``take`` spent (an attempt that turned out not to count)."""
        if self.rate <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            if key in self._buckets:
                self._buckets[key] = (min(self.capacity, self._tokens(key, now) + cost), now)

    def _prune(self, now: float) -> None:
        """Keep memory bounded when many keys (client addresses) come by: a bucket that has
        filled up again is the same as none."""
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets = {key: (tokens, at) for key, (tokens, at) in self._buckets.items()
                             if tokens + (now - at) * self.rate < self.capacity}  # fmt: skip
