"""Operation statuses, actions and step outcomes, and the one table of legal status changes."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What an operation does to a database's version table and schema."""

    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    STAMP = "stamp"


class Status(StrEnum):
    """Where an operation is in its life; see TRANSITIONS for how it moves."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def finished(self) -> bool:
        return self in FINISHED


class StepOutcome(StrEnum):
    """How one revision of an operation ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


ACTIVE = frozenset({Status.QUEUED, Status.RUNNING})
FINISHED = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.INTERRUPTED,
        Status.CANCELLED,
        Status.REJECTED,
        Status.EXPIRED,
    }
)

# Every status change an operation may make, and who makes it. A guarded UPDATE
# (`WHERE status = <from>`) carries each out, so two actors never both win.
TRANSITIONS: dict[tuple[Status, Status], str] = {
    (Status.AWAITING_APPROVAL, Status.QUEUED): "its last required approval is given",
    (Status.AWAITING_APPROVAL, Status.REJECTED): "an approver rejects it",
    (Status.AWAITING_APPROVAL, Status.EXPIRED): (
        "no approval came within approval_ttl, or what it would run changed before approval"
    ),
    (Status.AWAITING_APPROVAL, Status.CANCELLED): "a caller cancels it",
    (Status.QUEUED, Status.RUNNING): "a worker claims it",
    (Status.QUEUED, Status.CANCELLED): "a caller cancels it",
    (Status.RUNNING, Status.SUCCEEDED): "its job ran every step",
    (Status.RUNNING, Status.FAILED): "a step or the job's start failed; nothing more runs",
    (Status.RUNNING, Status.INTERRUPTED): "its job or worker died, or shutdown outlasted grace",
}


def can_move(source: Status, target: Status) -> bool:
    return (source, target) in TRANSITIONS


class IllegalTransitionError(ValueError):
    """A status change that TRANSITIONS does not list: a bug, never a user error."""

    def __init__(self, source: Status, target: Status) -> None:
        super().__init__(f"An operation cannot move from {source} to {target}.")


def require_move(source: Status, target: Status) -> None:
    if not can_move(source, target):
        raise IllegalTransitionError(source, target)


class JobEnd(StrEnum):
    """Why the worker stopped watching a job that had not recorded its own end."""

    EXITED = "exited"
    LEASE_LOST = "lease lost"
    START_TIMEOUT = "start timeout"
    SHUTDOWN = "shutdown"


class RolloutStatus(StrEnum):
    """Where a rollout is; workers advance a running one, callers pause, resume or cancel."""

    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"  # every database upgraded
    FAILED = "failed"  # more failures than max_failures, or done with some
    CANCELLED = "cancelled"


ROLLOUT_TRANSITIONS: dict[tuple[RolloutStatus, RolloutStatus], str] = {
    (RolloutStatus.RUNNING, RolloutStatus.PAUSED): "a caller pauses it: no new operations",
    (RolloutStatus.PAUSED, RolloutStatus.RUNNING): "a caller resumes it",
    (RolloutStatus.RUNNING, RolloutStatus.CANCELLED): "a caller cancels it (queued ones too)",
    (RolloutStatus.PAUSED, RolloutStatus.CANCELLED): "a caller cancels it (queued ones too)",
    (RolloutStatus.RUNNING, RolloutStatus.SUCCEEDED): "a worker saw every operation succeed",
    (RolloutStatus.RUNNING, RolloutStatus.FAILED): "a worker saw too many failures",
}
