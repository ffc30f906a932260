"""One webhook attempt over HTTP: Standard Webhooks signing, refused targets, no redirects."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import ipaddress
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from service.services.webhook_file import Webhook

USER_AGENT = "migctl-webhooks/1"
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class Attempt:
    """What one POST got: the status (None when no answer came), an error, Retry-After."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signature(secret: bytes, message_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>` (Standard Webhooks 1.0, symmetric)."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def headers(hook: Webhook, message_id: str, body: str, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(hook.secret_bytes(), message_id, timestamp, body),
    }


def refused_target(url: str, allow_private: bool) -> str | None:
    """Why `url` may not be posted to (a loopback, private or link-local address), else None."""
    if allow_private:
        return None
    parsed = urllib.parse.urlsplit(url)
    try:
        infos = socket.getaddrinfo(
            parsed.hostname or "", parsed.port or 443, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        return f"its host does not resolve: {exc}"
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            return f"its host resolves to {address}, not a public address (allow_private)"
    return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # a 3xx is a failed attempt (Standard Webhooks), never followed


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(hook: Webhook, message_id: str, body: str) -> Attempt:
    url = hook.url.reveal()
    refusal = refused_target(url, hook.allow_private)
    if refusal is not None:
        return Attempt(None, f"target refused: {refusal}")
    request = urllib.request.Request(
        url, data=body.encode(), headers=headers(hook, message_id, body), method="POST"
    )
    try:
        with _OPENER.open(request, timeout=hook.timeout) as response:
            return Attempt(int(response.status))
    except urllib.error.HTTPError as exc:
        return Attempt(exc.code, f"HTTP {exc.code}", retry_after(exc.headers.get("Retry-After")))
    except (OSError, ValueError) as exc:  # refused, reset, timed out, TLS
        return Attempt(None, _reason(exc))


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}"[:300]


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), bounded to a day."""
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER)
