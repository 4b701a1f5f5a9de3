"""The two ways out: Slack (slack-sdk's ``WebClient.chat_postMessage``) and signed webhooks.
Each send is one attempt; what to do next is the dispatcher's decision, from the ``Outcome``
(the single place where retrying is decided, and ``Retry-After`` is read).

Both go through ``BoundedHttp``: one deadline for the whole attempt, and only a prefix of the
answer read (slack-sdk's own urllib call has neither: it reads the answer whole, and its
timeout is per socket operation). Errors name URLs without their secrets (``redact_urls_in``).
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.request import Request

import httpx
import orjson
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from driftwatch.alerting import signing
from driftwatch.alerting.http import BoundedHttp, DeadlineExceeded
from driftwatch.text import redact_urls_in

log = logging.getLogger("driftwatch.delivery")
USER_AGENT = "driftwatch-webhooks/1"
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
# The most of a webhook's answer read (its first 300 characters go in a failed attempt's error);
# the rest is never read.
WEBHOOK_ANSWER_BYTES = 64 * 1024
# The most of a Slack API answer read (chat.postMessage answers a few kB); a longer one is not
# Slack's, and counts as a failed attempt.
SLACK_ANSWER_BYTES = 1024 * 1024
# Slack errors that retrying will not heal: the operator must fix the channel or the token,
# then redeliver.
SLACK_PERMANENT_ERRORS = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
    "account_inactive", "token_revoked", "token_expired", "missing_scope", "no_permission",
    "invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text", "restricted_action",
    "ekm_access_denied", "team_access_not_granted",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    reached: bool = False  # the endpoint answered (any status)
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds the endpoint asked us to wait
    permanent: bool = False  # retrying will not help
    response: dict[str, Any] | None = None

    @property
    def endpoint_failure(self) -> bool:
        """Counts toward the endpoint's breaker: no answer, or an error answer other than
        "slow down" (429)."""
        if self.delivered:
            return False
        return not self.reached or (self.status_code is not None and self.status_code >= 500)


def _timed_out(timeout: float) -> Outcome:
    return Outcome(False, error=f"no complete answer within {timeout:g} s "
                                "(DRIFTWATCH_DELIVERY_TIMEOUT_SECONDS)")  # fmt: skip


def _unanswered(error: Exception) -> Outcome:
    return Outcome(False, error=redact_urls_in(f"{type(error).__name__}: {error}")[:500])


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (RFC 9110: delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - (now if now is not None else time.time())
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


class WebhookSender:
    def __init__(self, timeout: float, http: BoundedHttp | None = None) -> None:
        self.timeout = timeout
        self._own = http is None
        self.http = http or BoundedHttp(timeout=timeout, headers={"user-agent": USER_AGENT})

    def close(self) -> None:
        if self._own:
            self.http.close()

    def send(self, *, url: str, secret_env: str | None, webhook_id: str, body: str) -> Outcome:
        secret = os.environ.get(secret_env or "")
        if not secret:
            return Outcome(False, error=f"the webhook secret variable {secret_env} is not set")
        try:
            key = signing.secret_key(secret)
        except signing.BadSecret as error:
            return Outcome(False, error=f"the variable {secret_env}: {error}")
        content = body.encode()
        headers = signing.headers(
            key, webhook_id=webhook_id, timestamp=int(time.time()), body=content
        )
        try:
            answer = self.http.post(url, content=content, headers=headers,
                                    limit=WEBHOOK_ANSWER_BYTES)  # fmt: skip
        except (DeadlineExceeded, httpx.TimeoutException):
            return _timed_out(self.timeout)
        except httpx.HTTPError as error:
            return _unanswered(error)
        if answer.is_success:
            return Outcome(True, reached=True, status_code=answer.status)
        text = answer.prefix[:1200].decode("utf-8", "replace")
        return Outcome(
            False, reached=True, status_code=answer.status,
            error=redact_urls_in(f"HTTP {answer.status}: {text[:300]}"),
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
        )  # fmt: skip


class AnswerTooLarge(Exception):
    pass


class _BoundedWebClient(WebClient):
    """slack-sdk's client, with its one HTTP call (urllib: the answer read whole, a timeout per
    socket operation) made by ``BoundedHttp`` instead; the request it builds and the way it reads
    the answer (``SlackResponse``, ``SlackApiError``) stay slack-sdk's."""

    def __init__(self, *, http: BoundedHttp, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._bounded = http

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        data = req.data if isinstance(req.data, bytes) else b""
        answer = self._bounded.post(url, content=data, headers=dict(req.header_items()),
                                    limit=SLACK_ANSWER_BYTES)  # fmt: skip
        if answer.truncated:
            raise AnswerTooLarge(f"the Slack API answered HTTP {answer.status} with a body "
                                 f"larger than {SLACK_ANSWER_BYTES:,} bytes")  # fmt: skip
        body = answer.prefix.decode("utf-8", "replace")  # Slack's answers are UTF-8 JSON
        return {"status": answer.status, "headers": dict(answer.headers), "body": body}


class SlackSender:
    def __init__(
        self, *, token: SecretStr | None, api_url: str, timeout: float,
        http: BoundedHttp | None = None,
    ) -> None:  # fmt: skip
        self.timeout = timeout
        self.client: WebClient | None = None
        self.http: BoundedHttp | None = None
        self._own = http is None
        if token is not None and token.get_secret_value():
            self.http = http or BoundedHttp(timeout=timeout)
            self.client = _BoundedWebClient(
                http=self.http,
                token=token.get_secret_value(),
                base_url=api_url if api_url.endswith("/") else api_url + "/",
                timeout=max(1, round(timeout)),
                retry_handlers=[],  # one send is one attempt: the dispatcher retries
            )

    def close(self) -> None:
        if self._own and self.http is not None:
            self.http.close()

    def send(self, *, body: str, thread_ts: str | None) -> Outcome:
        if self.client is None:
            return Outcome(False, error="DRIFTWATCH_SLACK_TOKEN is not set")
        message = orjson.loads(body)
        arguments: dict[str, Any] = {
            "channel": message["channel"], "text": message["text"], "blocks": message["blocks"],
            "unfurl_links": False, "unfurl_media": False,
        }  # fmt: skip
        if thread_ts:
            arguments["thread_ts"] = thread_ts
            # a repeat is a reply that also shows in the channel; a resolution stays threaded
            arguments["reply_broadcast"] = bool(message.get("repeat"))
        try:
            response = self.client.chat_postMessage(**arguments)
        except SlackApiError as error:
            return _slack_error(error)
        except (DeadlineExceeded, httpx.TimeoutException):
            return _timed_out(self.timeout)
        except Exception as error:  # network, a huge answer, JSON from a broken proxy
            return _unanswered(error)
        return Outcome(
            True, reached=True, status_code=response.status_code,
            response={"channel": response.get("channel"), "ts": response.get("ts"),
                      "thread_ts": thread_ts},
        )  # fmt: skip


def _slack_error(error: SlackApiError) -> Outcome:
    response = error.response
    status = response.status_code
    headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
    retry_after = headers.get("retry-after")
    if isinstance(retry_after, list):
        retry_after = retry_after[0] if retry_after else None
    code = response.get("error") if isinstance(response.data, dict) else None
    return Outcome(
        False, reached=True, status_code=status,
        error=f"Slack: {code or 'HTTP ' + str(status)}",
        retry_after=parse_retry_after(retry_after),
        permanent=code in SLACK_PERMANENT_ERRORS,
    )  # fmt: skip
