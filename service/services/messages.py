"""One message model for chat and webhooks: what a person needs to know at a glance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from service.lifecycle import FINISHED
from service.store.audit import AuditEvent
from service.store.operations import OperationRecord

MAX_ERROR = 500  # a chat line, not a log: the operation's page has the whole error


@dataclass(frozen=True)
class Message:
    """Plain data every format renders: a title, a paragraph, facts, a link, a colour."""

    event: str
    title: str
    text: str
    facts: tuple[tuple[str, str], ...] = ()
    link: str | None = None
    tone: str = "neutral"  # good, bad, warning or neutral
    error: str | None = None
    occurred_at: dt.datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)  # the standard format's `data`


def operation_link(public_url: str, operation_id: int | None) -> str | None:
    """Where the console shows the operation; None without MIGCTL_PUBLIC_URL."""
    if not public_url or operation_id is None:
        return None
    return f"{public_url}/console/operations/{operation_id}"


def person(record: OperationRecord) -> str:
    return record.actor + (f" for {record.on_behalf_of}" if record.on_behalf_of else "")


def duration(record: OperationRecord) -> str | None:
    if record.started_at is None or record.finished_at is None:
        return None
    seconds = (record.finished_at - record.started_at).total_seconds()
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def steps_done(record: OperationRecord) -> tuple[int, int]:
    done = sum(1 for step in record.steps if step.outcome == "succeeded")
    return done, max(len(record.planned_steps), len(record.steps))


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def operation_message(
    event: AuditEvent, record: OperationRecord, environment: str, public_url: str
) -> Message:
    """The message about `record` when `event` happened to it."""
    where = f"{record.database} ({environment})" if environment else record.database
    done, total = steps_done(record)
    took = duration(record)
    error = short(record.error_message, MAX_ERROR) if record.error_message else None
    text = (
        f"{where}: {record.action} to {record.revision}, asked by {person(record)}, "
        f"{status_phrase(record.status, took)}; {done} of {total} steps done."
        + (f" Failed at {record.failed_revision}: {error}" if error else "")
        + _event_sentence(event, record)
    )
    facts = [
        ("Database", record.database),
        ("Environment", environment or "-"),
        ("Action", f"{record.action} to {record.revision}"),
        ("Asked by", person(record)),
        ("Status", record.status),
        ("Steps", f"{done} of {total}"),
    ]
    facts += [("Duration", took)] if took else []
    facts += [("Failing revision", record.failed_revision)] if record.failed_revision else []
    if event.action in ("approval.approved", "approval.rejected"):
        facts.append(("Decided by", _who(event)))
    if event.action == "approval.refused":
        facts.append(("Refused to", _who(event)))
    return Message(
        event=event.action,
        title=f"{where}: {_headline(event, record)}",
        text=text,
        facts=tuple(facts),
        link=operation_link(public_url, record.id),
        tone=_tone(record.status),
        error=error,
        occurred_at=event.occurred_at,
        data=_data(event, record, done, total),
    )


def status_phrase(status: str, took: str | None = None) -> str:
    """`is awaiting approval`, `is running`; a finished one `failed after 0.4 s`."""
    words = status.replace("_", " ")
    if status not in FINISHED:
        return f"is {words}"
    return words + (f" after {took}" if took else "")


def _who(event: AuditEvent) -> str:
    return event.actor + (f" for {event.on_behalf_of}" if event.on_behalf_of else "")


def _headline(event: AuditEvent, record: OperationRecord) -> str:
    """What happened, in a chat notification's title: each event its own."""
    headlines = {
        "operation.requested": f"{record.action} requested",
        "approval.requested": f"{record.action} needs approval",
        "approval.approved": f"{record.action} approved by {event.actor}",
        "approval.rejected": f"{record.action} rejected by {event.actor}",
        "approval.refused": f"{event.actor} may not approve the {record.action}",
        "approval.expired": f"{record.action} expired unapproved",
    }
    return headlines.get(event.action, f"{record.action} {record.status.replace('_', ' ')}")


def _event_sentence(event: AuditEvent, record: OperationRecord) -> str:
    if event.action == "operation.requested":
        return f" {_who(event)} requested it."
    if event.action == "approval.refused":
        why = event.details.get("detail") or event.details.get("code") or "refused"
        return f" {_who(event)} may not approve it ({event.details.get('code')}): {why}"
    if event.action == "approval.expired":
        why = event.details.get("detail")
        return f" It expired: {why}" if why else " No approval came in time; it never ran."
    return _approval_sentence(event, record)


def _approval_sentence(event: AuditEvent, record: OperationRecord) -> str:
    if event.action == "approval.requested":
        expires = record.approval_expires_at
        until = f" before {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
        needed = record.approvals_required or 1
        return (
            f" It needs {needed} approval{'s' if needed > 1 else ''}{until} from "
            f"{event.details.get('approvers', 'an approver')}."
        )
    if event.action in ("approval.approved", "approval.rejected"):
        reason = event.details.get("reason")
        verb = event.action.split(".")[1]
        return f" {event.actor} {verb} it" + (f": {reason}" if reason else ".")
    return ""


def _tone(status: str) -> str:
    return {
        "succeeded": "good",
        "failed": "bad",
        "interrupted": "bad",
        "rejected": "bad",
        "awaiting_approval": "warning",
        "expired": "warning",
    }.get(status, "neutral")


def _data(event: AuditEvent, record: OperationRecord, done: int, total: int) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "database": record.database,
        "actor": event.actor,
        "on_behalf_of": event.on_behalf_of,
        "outcome": event.outcome,
        # The review (a file hash per revision) can be long: the operation's page has it.
        "details": {k: v for k, v in event.details.items() if k != "review"},
        "operation": {
            "id": record.id,
            "action": record.action,
            "revision": record.revision,
            "status": record.status,
            "requested_by": record.actor,
            "on_behalf_of": record.on_behalf_of,
            "steps_done": done,
            "steps_total": total,
            "failed_revision": record.failed_revision,
            "error": record.error_message,
        },
    }


def event_message(event: AuditEvent, environment: str) -> Message:
    """An event without an operation (a refusal, a denial): what happened, and to what."""
    where = f" on {event.database}" + (f" ({environment})" if environment else "")
    text = f"{event.action} ({event.outcome}) by {event.actor}{where if event.database else ''}."
    return Message(
        event=event.action,
        title=short(text, 150),
        text=text,
        facts=(("Database", event.database or "-"), ("Actor", event.actor)),
        occurred_at=event.occurred_at,
        data={"event_id": event.id, "database": event.database, "actor": event.actor},
    )


def database_message(
    name: str,
    environment: str,
    state: str,
    last: OperationRecord | None,
    public_url: str,
) -> Message:
    """A database at a glance: where its schema is, and its last operation."""
    where = f"{name} ({environment})" if environment else name
    text = f"{where} {state}."
    facts = [("Database", name), ("Environment", environment or "-"), ("Schema", state)]
    if last is not None:
        took = duration(last)
        text += (
            f" Last operation {last.id}: {last.action} to {last.revision}, asked by "
            f"{person(last)}, {status_phrase(last.status, took)}."
        )
        facts.append(("Last operation", f"{last.id} {last.action} {last.status}"))
    return Message(
        event="database.summary",
        title=f"{where}: {state}",
        text=text,
        facts=tuple(facts),
        link=operation_link(public_url, last.id if last else None),
        tone=_tone(last.status) if last else "neutral",
    )
