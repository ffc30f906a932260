"""Approve from Slack: verify a block_actions request's signature, map its user, decide."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from service.errors import MigctlError, UnauthenticatedError
from service.services import approvals
from service.services.access import Principal, Role
from service.services.context import RequestContext
from service.services.registry import Registry
from service.services.webhook_file import SlackApp
from service.store.db import ControlStore

TOLERANCE_SECONDS = 300  # Slack's own SDKs refuse older requests (replays)
APPROVE, REJECT = "migctl_approve", "migctl_reject"


def verify(app: SlackApp, timestamp: str, body: bytes, signature: str, now: float) -> None:
    """Raise UnauthenticatedError unless `signature` is Slack's v0 HMAC of this request."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        raise UnauthenticatedError("The Slack request timestamp is missing or too old.")
    base = b"v0:" + timestamp.encode() + b":" + body
    key = app.signing_secret.reveal().encode()
    expected = "v0=" + hmac.new(key, base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise UnauthenticatedError("The Slack request signature does not match.")


@dataclass(frozen=True)
class Click:
    user: str
    action: str
    operation_id: int


def parse(body: bytes) -> Click | None:
    """The button a person clicked, from the form's `payload`; None for anything else."""
    try:
        payload: Any = json.loads(urllib.parse.parse_qs(body.decode())["payload"][0])
        (action,) = [a for a in payload["actions"] if a["action_id"] in (APPROVE, REJECT)]
        return Click(str(payload["user"]["id"]), action["action_id"], int(action["value"]))
    except (KeyError, IndexError, ValueError, TypeError, UnicodeDecodeError):
        return None


def interact(
    registry: Registry, store: ControlStore, app: SlackApp, click: Click, base: RequestContext
) -> str:
    """Approve or reject as the person the Slack user maps to; the reply Slack shows."""
    person = app.approvers.get(click.user)
    if person is None:
        return f"Slack user {click.user} is not an approver in migctl's webhooks file."
    principal = Principal(person, Role.APPROVER)
    context = RequestContext(
        actor=person,
        principal=principal,
        request_id=base.request_id,
        client_address=base.client_address,
        user_agent=base.user_agent,
    )
    try:
        if click.action == APPROVE:
            record = approvals.approve(registry, store, click.operation_id, context)
        else:
            reason = f"rejected from Slack by {person}"
            record = approvals.reject(store, click.operation_id, context, reason)
    except MigctlError as exc:
        said = f"Operation {click.operation_id}"
        return exc.detail if exc.detail.startswith(said) else f"{said}: {exc.detail}"
    return f"Operation {record.id} is {record.status.replace('_', ' ')} ({person})."


def now() -> float:
    return time.time()
