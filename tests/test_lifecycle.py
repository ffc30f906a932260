"""The operation state machine: one table of legal moves, enforced by the store."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service.lifecycle import (
    FINISHED,
    TRANSITIONS,
    Action,
    IllegalTransitionError,
    Status,
    can_move,
)
from service.store import operations as ops
from service.store.db import ControlStore
from service.store.tables import operations
from tests.helpers import fresh_control_url


def test_the_legal_moves_are_exactly_the_documented_ones() -> None:
    assert set(TRANSITIONS) == {
        (Status.AWAITING_APPROVAL, Status.QUEUED),
        (Status.AWAITING_APPROVAL, Status.REJECTED),
        (Status.AWAITING_APPROVAL, Status.EXPIRED),
        (Status.AWAITING_APPROVAL, Status.CANCELLED),
        (Status.QUEUED, Status.RUNNING),
        (Status.QUEUED, Status.CANCELLED),
        (Status.RUNNING, Status.SUCCEEDED),
        (Status.RUNNING, Status.FAILED),
        (Status.RUNNING, Status.INTERRUPTED),
    }


def test_a_finished_operation_never_moves_again() -> None:
    for finished in FINISHED:
        assert not any(can_move(finished, target) for target in Status)


def test_every_status_is_reachable_from_awaiting_approval() -> None:
    reached, frontier = {Status.AWAITING_APPROVAL}, [Status.AWAITING_APPROVAL]
    while frontier:
        source = frontier.pop()
        for target in Status:
            if can_move(source, target) and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(Status)


def test_the_control_table_accepts_every_status_and_action_and_nothing_else() -> None:
    checks = {
        str(c.name): str(c.sqltext)
        for c in operations.constraints
        if isinstance(c, sa.CheckConstraint)
    }
    for status in Status:
        assert f"'{status}'" in checks["ck_migctl_operations_status"]
    for action in Action:
        assert f"'{action}'" in checks["ck_migctl_operations_action"]


def test_the_store_refuses_a_move_the_table_does_not_list() -> None:
    store = ControlStore(fresh_control_url())
    with store.transaction() as connection, pytest.raises(IllegalTransitionError):
        ops.transition(connection, 1, from_status=Status.SUCCEEDED, to_status=Status.RUNNING)
    store.dispose()


def test_the_database_refuses_a_status_outside_the_enum() -> None:
    store = ControlStore(fresh_control_url())
    values = {
        "database": "db",
        "action": "upgrade",
        "revision": "heads",
        "target_revisions": [],
        "planned_steps": [],
        "status": "lost",
        "actor": "test",
        "requested_at": sa.func.now(),
    }
    with pytest.raises(Exception, match="CHECK constraint"), store.transaction() as connection:
        connection.execute(operations.insert().values(**values))
    store.dispose()
