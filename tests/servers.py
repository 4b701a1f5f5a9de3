"""Real HTTP servers on 127.0.0.1 standing in for the outside world: a team's webhook receiver
and Slack's Web API. driftwatch talks to them with its real clients (httpx, slack-sdk)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, extra headers) for the n-th request (0-based); a status of 0 means: hang for a
# while, then drop the connection without answering.
Plan = Callable[[int], tuple[int, dict[str, str]]]


@dataclass
class Received:
    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Server:
    plan: Plan
    hang_seconds: float = 5.0
    bind_port: int = 0  # 0: any free port
    # Hostile answers, per request number: a body of this many bytes, made as it is written
    # (never held whole), instead of the usual one (0: the usual one) ...
    huge_body: Callable[[int], int] = lambda _number: 0
    # ... and the whole answer (status line, headers, body) written one byte every this many
    # seconds (0: at once). The receiver stops when the client hangs up.
    drip_seconds: Callable[[int], float] = lambda _number: 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with outer.lock:
                    number = len(outer.requests)
                    status, headers = outer.plan(number)
                    outer.requests.append(Received(
                        time.monotonic(), self.path,
                        {k.lower(): v for k, v in self.headers.items()}, body, status,
                    ))  # fmt: skip
                if status == 0:
                    time.sleep(outer.hang_seconds)
                    self.close_connection = True
                    return
                huge, drip = outer.huge_body(number), outer.drip_seconds(number)
                payload = b"" if huge else outer.answer(self.path, body, status, number)
                self.send_response(status)
                for name, value in {"content-type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(huge or len(payload)))
                if drip:
                    self._drip(b"".join(self._headers_buffer) + b"\r\n" + payload, drip)
                    return
                self.end_headers()
                try:
                    self.wfile.write(payload)
                    chunk = b"x" * 65536
                    for start in range(0, huge, len(chunk)):
                        self.wfile.write(chunk[: huge - start])
                except OSError:
                    self.close_connection = True  # the client hung up

            def _drip(self, answer: bytes, seconds: float) -> None:
                self._headers_buffer = []
                self.close_connection = True
                try:
                    for index in range(len(answer)):
                        self.wfile.write(answer[index : index + 1])
                        self.wfile.flush()
                        time.sleep(seconds)
                except OSError:
                    pass  # the client hung up

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.bind_port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, body: bytes, status: int, number: int) -> bytes:
        return b'{"ok": true}' if status < 300 else b'{"error": "not now"}'

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


def always(status: int = 200) -> Plan:
    return lambda _number: (status, {})


class Receiver(_Server):
    """A team's webhook receiver."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/retrain"

    def accepted(self) -> list[Received]:
        return [r for r in self.received() if 200 <= r.status < 300]


class FakeSlack(_Server):
    """Slack's Web API, as much of it as ``chat.postMessage`` needs."""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def answer(self, path: str, body: bytes, status: int, number: int) -> bytes:
        if status == 429:
            return b'{"ok": false, "error": "ratelimited"}'
        if status >= 300:
            return b"upstream error"
        message = json.loads(body)
        return json.dumps({
            "ok": True, "channel": "C0TESTCHAN", "ts": f"1700000000.{number:06d}",
            "message": {"text": message.get("text")},
        }).encode()  # fmt: skip

    def posted(self) -> list[dict[str, Any]]:
        """The messages Slack accepted, in order, each with its ``ts``."""
        out = []
        for number, request in enumerate(self.received()):
            if request.status == 200 and request.path.endswith("chat.postMessage"):
                out.append({**request.json(), "ts": f"1700000000.{number:06d}",
                            "authorization": request.headers.get("authorization")})  # fmt: skip
        return out
