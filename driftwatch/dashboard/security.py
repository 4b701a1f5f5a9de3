"""Headers every answer carries: a strict Content-Security-Policy (scripts only from this site's
own files, nothing from another origin), no framing, no content sniffing.

Pages put their data in ``<script type="application/json" id="page-data">`` (data, not script:
Jinja's ``tojson`` writes ``<``, ``>``, ``&`` and ``'`` as ``\\u003c`` and so on, so a ``</script>``
in the data cannot close it). Styles allow ``'unsafe-inline'``: the templates size charts with
``style=`` attributes and ECharts writes its tooltips' markup with inline styles; every string
that came from traffic, rules or receivers reaches a page as text, so this lets no script in.

Evidently's report is its own HTML full of inline scripts: it is served with its own policy, as a
sandbox (an opaque origin: its scripts cannot read the dashboard's cookie-bearing pages or call
the API as the viewer) that may not be framed and may not send anything anywhere.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
))  # fmt: skip
REPORT_POLICY = "; ".join((
    "sandbox allow-scripts",
    "default-src 'none'",
    "script-src 'unsafe-inline' 'unsafe-eval'",
    "style-src 'unsafe-inline'",
    "img-src data: blob:",
    "font-src data:",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
))  # fmt: skip
HEADERS = {
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
}


class SecurityHeaders:
    """Adds ``HEADERS`` to every answer, and ``PAGE_POLICY`` to every answer that has no policy of
    its own (Evidently's report sets ``REPORT_POLICY``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in HEADERS.items()
                            if name not in present]  # fmt: skip
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
