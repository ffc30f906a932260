"""What a wait says about an operation's approval: how many, from whom, until when; by whom."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from service.client.transport import ClientError, Server

AWAITING = "operation.awaiting_approval"
QUEUED = "operation.queued"
ANYONE = "an approver other than the requester"

Note = Callable[[str], "str | None"]  # an event kind -> a line about the approval, or None


def approval_note(server: Server, operation_id: int) -> Note:
    """Reads the operation (and who may approve, from its audit) when an approval event comes."""

    def note(kind: str) -> str | None:
        try:
            operation = _get(server, f"/operations/{operation_id}")
        except ClientError:
            return None
        if kind == AWAITING:
            return awaiting(operation, _approvers(server, operation_id))
        return approved(operation)

    return note


def awaiting(operation: Mapping[str, Any], approvers: str) -> str:
    needed = operation.get("approvals_required") or 1
    given = sum(1 for a in operation.get("approvals") or [] if a.get("decision") == "approved")
    expires = _when(operation.get("approval_expires_at"))
    until = f", until {expires}" if expires else ""
    return (
        f"operation {operation['id']} awaits {needed - given} approval"
        f"{'s' if needed - given != 1 else ''} from {approvers}{until}"
    )


def approved(operation: Mapping[str, Any]) -> str:
    people = [
        a["actor"] for a in operation.get("approvals") or [] if a.get("decision") == "approved"
    ]
    by = f" by {', '.join(people)}" if people else ""
    return f"operation {operation['id']} approved{by}: queued"


def _approvers(server: Server, operation_id: int) -> str:
    """Who may approve, as the approval request's audit event says (a token may not read it)."""
    path = f"/audit-events?operation_id={operation_id}&action=approval.requested&limit=1"
    try:
        found = _get(server, path)
    except ClientError:
        return ANYONE
    if isinstance(found, list) and found and isinstance(found[0].get("details"), dict):
        return str(found[0]["details"].get("approvers") or ANYONE)
    return ANYONE


def _when(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _get(server: Server, path: str) -> Any:
    return server.call("GET", path, deadline=time.monotonic() + 5).json()
