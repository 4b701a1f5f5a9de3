"""Standard Webhooks v1 signatures (CONTRACT section 6). Pure.

Signed content is ``{webhook-id}.{webhook-timestamp}.{body}``, keyed by the base64-decoded part
of the ``whsec_...`` secret; the signature header is ``v1,<base64 HMAC-SHA256>``. The tests
verify what this writes with the ``standardwebhooks`` package, an implementation of its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

SECRET_PREFIX = "whsec_"


class BadSecret(ValueError):
    pass


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise BadSecret("a Standard Webhooks secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("the part after 'whsec_' is not base64") from None
    if len(key) < 16:
        raise BadSecret("the secret is shorter than 16 bytes")
    return key


def signature(key: bytes, *, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, *, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"
