"""Webhooks: the outbox rows an audit event adds, delivery with retries, and what the API lists."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from service.errors import WebhookNotFoundError
from service.services import webhook_http
from service.services.access import GRANTS, Permission, Principal
from service.services.chat_formats import render
from service.services.messages import Message, event_message, operation_message
from service.services.tokens import TokenFile
from service.services.webhook_file import Webhook, WebhooksFile
from service.settings import Settings
from service.store import operations as ops
from service.store import webhooks as outbox
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow
from service.store.webhooks import DELIVERED, FAILED, PENDING, DeliveryRecord

logger = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 6 * 3600.0
LEASE_MARGIN_SECONDS = 30.0
KEEP_DAYS = 30  # settled deliveries are kept this long for GET .../deliveries, then pruned
Send = Callable[[Webhook, str, str], webhook_http.Attempt]


Approvers = Callable[[str], list[str]]  # database -> who may approve there, by name


def message_for(
    connection: sa.Connection,
    event: AuditEvent,
    settings: Settings,
    approvers: Approvers | None = None,
) -> Message:
    """The event as a person reads it, with its operation as it is in this transaction."""
    if event.action == "approval.requested" and approvers is not None and event.database:
        names = [name for name in approvers(event.database) if name != event.actor]
        if names:  # the channel learns who to ask, by name
            details = {**event.details, "approvers": ", ".join(names)}
            event = dataclasses.replace(event, details=details)
    database = settings.database(event.database or "")
    environment = database.environment if database else ""
    record = None
    if event.operation_id is not None:
        record = ops.get(connection, event.operation_id, with_steps=True)
    if record is None:
        return event_message(event, environment)
    return operation_message(event, record, environment, settings.public_url)


def outbox_listener(
    hooks: WebhooksFile, settings: Settings, approvers: Approvers | None = None
) -> Callable[[sa.Connection, AuditEvent], None]:
    """Adds a delivery row per subscription that wants the event, in the event's transaction."""

    def listen(connection: sa.Connection, event: AuditEvent) -> None:
        wanted = [hook for hook in hooks.webhooks() if hook.wants(event.action, event.database)]
        if not wanted:
            return
        off = outbox.disabled(connection)
        try:
            message = message_for(connection, event, settings, approvers)
        except (KeyError, TypeError, ValueError, AttributeError):
            # A bug in a message must not undo the audited change: send the bare event.
            logger.exception("webhook message for event %s fell back to the plain one", event.id)
            message = event_message(event, "")
        for hook in wanted:
            if off.get(hook.name, ("", ""))[0] == hook.url_sha256:
                continue
            outbox.insert(connection, _row(hook, event, message))

    return listen


def _row(hook: Webhook, event: AuditEvent, message: Message) -> dict[str, object]:
    now = utcnow()
    return {
        "webhook": hook.name,
        "event_id": event.id,
        "event_type": event.action,
        "database": event.database,
        "operation_id": event.operation_id,
        "body": json.dumps(render(hook.format, message), separators=(",", ":")),
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def message_id(delivery: DeliveryRecord) -> str:
    """The webhook-id: the same on every attempt, so receivers can drop duplicates."""
    return f"msg_migctl_{delivery.id}"


def deliver_due(
    store: ControlStore, hooks: WebhooksFile, limit: int = 20, send: Send = webhook_http.post
) -> int:
    """Claim due deliveries and attempt each once; the number attempted."""
    longest = max((hook.timeout for hook in hooks.webhooks()), default=10.0)
    lease = dt.timedelta(seconds=longest + LEASE_MARGIN_SECONDS)
    with store.transaction() as connection:
        claimed = outbox.claim_due(connection, utcnow(), lease, limit)
        off = outbox.disabled(connection)
    for delivery in claimed:
        hook = hooks.get(delivery.webhook)
        attempt = None
        if hook is None:
            values: dict[str, object] = {"status": FAILED, "last_error": "not in the file now"}
        elif off.get(hook.name, ("", ""))[0] == hook.url_sha256:
            values = {"status": FAILED, "last_error": "the webhook is disabled (410 Gone)"}
        else:
            attempt = send(hook, message_id(delivery), delivery.body)
            values = _outcome(hook, delivery, attempt)
        with store.transaction() as connection:
            outbox.record_attempt(connection, delivery.id, values)
            if hook is not None and attempt is not None and attempt.status == 410:
                outbox.disable(
                    connection, hook.name, hook.url_sha256, "the receiver answered 410 Gone"
                )
    return len(claimed)


def _outcome(
    hook: Webhook, delivery: DeliveryRecord, attempt: webhook_http.Attempt
) -> dict[str, object]:
    error = attempt.error.replace(hook.url.reveal(), hook.masked_url) if attempt.error else None
    values: dict[str, object] = {"last_status_code": attempt.status, "last_error": error}
    if attempt.succeeded:
        return {**values, "status": DELIVERED, "last_error": None}
    if attempt.status == 410 or delivery.attempts >= hook.max_attempts:
        return {**values, "status": FAILED}
    delay = backoff(hook.backoff_seconds, delivery.attempts)
    if attempt.retry_after is not None:
        delay = max(delay, attempt.retry_after)
    return {**values, "status": PENDING, "next_attempt_at": utcnow() + dt.timedelta(seconds=delay)}


def prune(store: ControlStore, keep_days: float = KEEP_DAYS) -> int:
    with store.transaction() as connection:
        return outbox.prune(connection, utcnow() - dt.timedelta(days=keep_days))


def backoff(base: float, attempts: int) -> float:
    """Exponential with jitter: base·2^(n-1), drawn between half of it and all of it."""
    ceiling = min(base * 2 ** max(0, attempts - 1), MAX_BACKOFF_SECONDS)
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class WebhookView:
    """A subscription as the API shows it: never the secret, never the URL's credential."""

    name: str
    url: str
    events: tuple[str, ...]
    databases: list[str] | None
    format: str
    allow_private: bool
    enabled: bool
    disabled_reason: str | None


def approvers_from(tokens: TokenFile | None, hooks: WebhooksFile) -> Approvers:
    """Who may approve on a database: tokens with the approve permission that see it, and
    the people the [slack.approvers] table names."""

    def names(database: str) -> list[str]:
        found = [
            principal.name
            for principal in (tokens.principals() if tokens else [])
            if Permission.APPROVE in GRANTS[principal.role] and principal.sees(database)
        ]
        slack = hooks.slack()
        return sorted(set(found) | set(slack.approvers.values() if slack else ()))

    return names


def visible(principal: Principal, hook: Webhook) -> bool:
    """A scoped token sees a subscription only when all its databases are in its scope."""
    if principal.databases is None:
        return True
    return hook.databases is not None and hook.databases <= principal.databases


def list_webhooks(
    store: ControlStore, hooks: WebhooksFile, principal: Principal
) -> list[WebhookView]:
    principal.require(Permission.READ)
    with store.transaction() as connection:
        off = outbox.disabled(connection)
    return [
        WebhookView(
            name=hook.name,
            url=hook.masked_url,
            events=hook.events,
            databases=sorted(hook.databases) if hook.databases is not None else None,
            format=hook.format,
            allow_private=hook.allow_private,
            enabled=off.get(hook.name, ("", ""))[0] != hook.url_sha256,
            disabled_reason=off.get(hook.name, ("", ""))[1] or None,
        )
        for hook in hooks.webhooks()
        if visible(principal, hook)
    ]


def _hook(hooks: WebhooksFile, name: str, principal: Principal) -> Webhook:
    hook = hooks.get(name)
    if hook is None or not visible(principal, hook):
        raise WebhookNotFoundError(f"No webhook is named {name!r}.", webhook=name)
    return hook


def list_deliveries(
    store: ControlStore, hooks: WebhooksFile, name: str, principal: Principal, first: int, last: int
) -> tuple[list[DeliveryRecord], int]:
    principal.require(Permission.READ)
    _hook(hooks, name, principal)
    with store.transaction() as connection:
        return outbox.list_page(connection, name, first, last)


def redeliver(
    store: ControlStore, hooks: WebhooksFile, name: str, delivery_id: int, principal: Principal
) -> DeliveryRecord:
    """Send a delivery again (same webhook-id): pending now, its attempts counted afresh."""
    principal.require(Permission.WEBHOOKS)
    _hook(hooks, name, principal)
    with store.transaction() as connection:
        found = outbox.get(connection, delivery_id)
        if found is None or found.webhook != name:
            raise WebhookNotFoundError(
                f"Webhook {name!r} has no delivery {delivery_id}.",
                webhook=name,
                delivery_id=delivery_id,
            )
        values = {"status": PENDING, "attempts": 0, "next_attempt_at": utcnow()}
        outbox.record_attempt(connection, delivery_id, values)
        again = outbox.get(connection, delivery_id)
    assert again is not None
    return again
