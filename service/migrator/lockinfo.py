"""The migration lock as the database sees it, asked of the project's runner."""

from __future__ import annotations

from typing import Any

from service.errors import MigctlError, redacted
from service.migrator.scripts import ProjectScripts
from service.settings import ManagedDatabase


def inspect_lock(scripts: ProjectScripts, database: ManagedDatabase) -> dict[str, Any]:
    """`kind`, and `holder` (pid, state, query ...), `waiting_for`, `blocked_by` on
    PostgreSQL's advisory lock, or `lease` (holder, expires_at, expired) for `lock = "table"`."""
    return _ask(scripts, database, "locks")


def release_expired_lease(scripts: ProjectScripts, database: ManagedDatabase) -> dict[str, Any]:
    """Clear a lease row whose holder let it expire: `lease` as it was, and `released`."""
    return _ask(scripts, database, "release-lease")


def _ask(scripts: ProjectScripts, database: ManagedDatabase, op: str) -> dict[str, Any]:
    url = database.job_url.reveal()
    try:
        found: dict[str, Any] = scripts.runner.request(
            op, database=database.name, url=url, kind=database.lock
        )
    except MigctlError as exc:
        raise redacted(exc, database.secret_values()) from None
    return found
