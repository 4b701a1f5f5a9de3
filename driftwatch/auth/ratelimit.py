"""A token bucket per API key for ingestion: records per second, with a burst allowance.

Per process: with N replicas behind a load balancer a key may send up to N times the rate.
"""

from __future__ import annotations

import math
import threading
import time


class RateLimiter:
    def __init__(self, rate: float, burst_seconds: float = 2.0) -> None:
        self.rate = rate  # records a second; 0 or less: no limit
        self.capacity = rate * burst_seconds
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key_id: int, cost: int, now: float | None = None) -> int | None:
        """Spend ``cost`` records of the key's allowance; None if allowed, else the whole
        seconds to wait before the batch would be."""
        if self.rate <= 0:
            return None
        now = time.monotonic() if now is None else now
        # a batch larger than the burst is let through once the bucket is full
        spend = min(float(cost), self.capacity)
        with self._lock:
            tokens, at = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= spend:
                self._buckets[key_id] = (tokens - spend, now)
                return None
            self._buckets[key_id] = (tokens, now)
            return max(1, math.ceil((spend - tokens) / self.rate))
