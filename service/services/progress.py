"""An operation's progress as its events carry it: steps done of total, seconds left."""

from __future__ import annotations

from typing import Any

from service.services import events
from service.store.db import ControlStore
from service.store.operations import OperationRecord as OperationRecord


def operation_progress(store: ControlStore, record: OperationRecord) -> dict[str, Any]:
    """`done`, `total` and `eta_seconds` (None until every remaining revision has run once)."""
    with store.transaction() as connection:
        return events.snapshot(connection, record)
