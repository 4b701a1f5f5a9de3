"""The two ways out: Slack (slack-sdk's ``WebClient.chat_postMessage``) and signed webhooks
(httpx). Each send is one attempt; what to do next is the dispatcher's decision, from the
``Outcome`` (the single place where retrying is decided, and ``Retry-After`` is read)."""

from __future__ import annotations

import email.utils
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import httpx
import orjson
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from driftwatch.alerting import signing

log = logging.getLogger("driftwatch.delivery")
USER_AGENT = "driftwatch-webhooks/1"
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
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
    def __init__(self, timeout: float) -> None:
        self.client = httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"user-agent": USER_AGENT}
        )

    def close(self) -> None:
        self.client.close()

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
            response = self.client.post(url, content=content, headers=headers)
        except httpx.TimeoutException:
            return Outcome(False, error=f"no answer within {self.client.timeout.read} s")
        except httpx.HTTPError as error:
            return Outcome(False, error=f"{type(error).__name__}: {error}"[:500])
        if response.is_success:
            return Outcome(True, reached=True, status_code=response.status_code)
        return Outcome(
            False, reached=True, status_code=response.status_code,
            error=f"HTTP {response.status_code}: {response.text[:300]}",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )  # fmt: skip


class SlackSender:
    def __init__(self, *, token: SecretStr | None, api_url: str, timeout: float) -> None:
        self.client = None
        if token is not None and token.get_secret_value():
            self.client = WebClient(
                token=token.get_secret_value(),
                base_url=api_url if api_url.endswith("/") else api_url + "/",
                timeout=max(1, round(timeout)),
                retry_handlers=[],  # one send is one attempt: the dispatcher retries
            )

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
        except Exception as error:  # urllib, socket, JSON from a broken proxy: not answered
            return Outcome(False, error=f"{type(error).__name__}: {error}"[:500])
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
