"""The client's exit codes: one table, shown by `--help` and the README, tested."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """What a pipeline can branch on (modelled on gh run watch, kubectl wait, terraform)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    STOPPED = 3
    REFUSED = 4
    TIMED_OUT = 5
    UNREACHABLE = 6
    UNAVAILABLE = 7


MEANINGS: dict[Exit, str] = {
    Exit.OK: "succeeded, or nothing to do (also: queued, without --wait; revision reached)",
    Exit.FAILED: "the operation failed: the failing revision's error and SQL are printed",
    Exit.USAGE: "usage error: a bad option or argument (nothing was sent)",
    Exit.STOPPED: "the operation was interrupted (worker died), cancelled, or its approval expired",
    Exit.REFUSED: "refused (4xx: precondition, policy, permission, not found) or rejected "
    "by an approver",
    Exit.TIMED_OUT: "timed out while waiting; the operation goes on (wait again with its id)",
    Exit.UNREACHABLE: "server unreachable (after retries), or a server error",
    Exit.UNAVAILABLE: "the server answered 503 with a problem (project-unavailable at once, "
    "others after retries): its code and detail are printed",
}

BY_STATUS = {
    "succeeded": Exit.OK,
    "failed": Exit.FAILED,
    "interrupted": Exit.STOPPED,
    "cancelled": Exit.STOPPED,
    "expired": Exit.STOPPED,
    "rejected": Exit.REFUSED,
}
FINISHED = frozenset(BY_STATUS)


def table() -> str:
    """The table as text, for `--help`."""
    return "\n".join(f"  {code.value}  {MEANINGS[code]}" for code in Exit)
