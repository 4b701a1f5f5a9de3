"""One bounded POST for both senders: a total deadline for the whole attempt (connect, TLS,
request, every byte of the answer) and at most a prefix of the answer read.

httpx's timeouts are per operation: a receiver that sends one byte a second never trips a 10 s
read timeout and holds the attempt (and its delivery's lease) as long as it likes; and reading
an answer whole lets a receiver fill memory. Here every attempt runs as a coroutine of one
event loop (its own thread), under ``asyncio.timeout``, on one shared ``httpx.AsyncClient``
(connections are kept alive between attempts); the answer is read raw (never decompressed)
and the connection closed once ``limit`` bytes are in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from driftwatch.text import RedactUrls

# httpx logs each request with its URL ("HTTP Request: POST https://...?token=..."): the
# record is redacted where it is made, whatever handler (or test) receives it.
_HTTPX_LOG = logging.getLogger("httpx")
if not any(isinstance(f, RedactUrls) for f in _HTTPX_LOG.filters):
    _HTTPX_LOG.addFilter(RedactUrls())


T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The attempt did not finish within its deadline."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    prefix: bytes  # the first ``limit`` bytes of the body at most
    truncated: bool  # the body was longer than ``limit``

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


class BoundedHttp:
    def __init__(self, *, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="driftwatch-http")  # fmt: skip
        self._thread.start()
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False,
            # the answer is read raw: a compressed one could be a bomb
            headers={**(headers or {}), "accept-encoding": "identity"},
        )  # fmt: skip
        self._closed = False

    def post(self, url: str, *, content: bytes, headers: Mapping[str, str], limit: int) -> Answer:
        """Raise ``DeadlineExceeded`` past the deadline, httpx's errors for the others."""
        future = self._run(self._post(url, content, headers, limit))
        try:
            # (the coroutine stops itself at the deadline; this is only a safety net)
            return future.result(timeout=self.timeout + 5)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise DeadlineExceeded from None

    async def _post(
        self, url: str, content: bytes, headers: Mapping[str, str], limit: int
    ) -> Answer:
        try:
            async with asyncio.timeout(self.timeout):
                request = self._client.build_request("POST", url, content=content,
                                                     headers=headers)  # fmt: skip
                response = await self._client.send(request, stream=True)
                try:
                    prefix = bytearray()
                    truncated = False
                    async for chunk in response.aiter_raw():
                        room = limit - len(prefix)
                        prefix += chunk[:room]
                        if len(chunk) > room:
                            truncated = True  # the rest is never read: the connection goes
                            break
                    return Answer(response.status_code, response.headers, bytes(prefix),
                                  truncated)  # fmt: skip
                finally:
                    await response.aclose()
        except TimeoutError:
            raise DeadlineExceeded from None

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._run(self._client.aclose()).result(timeout=5)
        except Exception:  # closing: nothing left to do about it
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
