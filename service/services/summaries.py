"""Chat-ready summaries for bots: a paragraph and Slack blocks, from the webhooks' renderer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.errors import MigctlError
from service.lifecycle import Status
from service.services import operations
from service.services.access import Permission, Principal
from service.services.chat_formats import slack_blocks
from service.services.databases import DatabaseStatus, database_status
from service.services.messages import Message, database_message, operation_message
from service.services.registry import Registry
from service.settings import Settings
from service.store import operations as ops
from service.store.audit import AuditEvent
from service.store.db import ControlStore, utcnow


@dataclass(frozen=True)
class ChatSummary:
    text: str
    blocks: list[dict[str, Any]]


def _summary(message: Message) -> ChatSummary:
    return ChatSummary(text=message.text, blocks=slack_blocks(message))


def operation_summary(
    store: ControlStore, settings: Settings, operation_id: int, principal: Principal
) -> ChatSummary:
    principal.require(Permission.READ)
    record = operations.get_operation(store, operation_id, principal=principal)
    database = settings.database(record.database)
    now = AuditEvent(
        actor=record.actor,
        on_behalf_of=record.on_behalf_of,
        action=f"operation.{record.status}",
        outcome=record.status,
        occurred_at=utcnow(),
        database=record.database,
        operation_id=record.id,
    )
    environment = database.environment if database else ""
    return _summary(operation_message(now, record, environment, settings.public_url))


def database_summary(
    registry: Registry, store: ControlStore, settings: Settings, name: str, principal: Principal
) -> ChatSummary:
    principal.require(Permission.READ, name)
    managed = registry.get(name)
    try:
        state = _state(database_status(registry, name))
    except MigctlError as exc:  # the summary still answers: say why the state is unknown
        state = f"cannot be read ({exc.code})"
    with store.transaction() as connection:
        last = ops.latest_for(connection, name, list(Status))
    message = database_message(name, managed.database.environment, state, last, settings.public_url)
    return _summary(message)


def _state(status: DatabaseStatus) -> str:
    current = ", ".join(status.current_heads) or "base (empty)"
    if status.unknown_revisions:
        return f"is at {current}, which the scripts do not know"
    if status.up_to_date:
        return f"is up to date at {current}"
    pending = status.pending_revisions or []
    shown = ", ".join(pending[:5]) + (" ..." if len(pending) > 5 else "")
    return f"is at {current}, {len(pending)} revision(s) behind ({shown} pending)"
