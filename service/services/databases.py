"""Use cases about managed databases: the list, one database, and its migration status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from service.errors import MigctlError
from service.services.registry import Managed, Registry
from service.settings import ManagedDatabase


class SchemaState(StrEnum):
    """Where a database stands against its scripts, in one word for bots and portals."""

    UP_TO_DATE = "up_to_date"
    BEHIND = "behind"
    UNKNOWN_REVISION = "unknown_revision"


@dataclass(frozen=True)
class Project:
    alembic_config: str
    alembic_section: str


@dataclass(frozen=True)
class Policy:
    """The effective policy (defaults applied): what a request will meet before it runs."""

    allow_downgrade: bool
    allow_stamp: bool
    require_approval: bool
    approvals_required: int
    approval_ttl: float
    lint: str
    lock_timeout: str | None
    statement_timeout: str | None


@dataclass(frozen=True)
class DatabaseSummary:
    name: str
    environment: str
    description: str
    dialect: str
    url: str
    project: Project
    policy: Policy
    labels: Mapping[str, str]


@dataclass(frozen=True)
class DatabaseStatus:
    """The answer to "what is this database at, and what is pending"."""

    database: str
    state: SchemaState
    up_to_date: bool | None
    current_heads: list[str]
    script_heads: list[str]
    multiple_heads: bool
    pending_count: int | None
    pending_revisions: list[str] | None
    unknown_revisions: list[str]
    version_table: str | None


@dataclass(frozen=True)
class StatusProblem:
    code: str
    detail: str


@dataclass(frozen=True)
class DatabaseDetail(DatabaseSummary):
    """A database with its status, or the problem that kept the status from being read."""

    status: DatabaseStatus | None
    status_problem: StatusProblem | None


@dataclass(frozen=True)
class Runtime:
    """The interpreter a database's project runs in, as its runner reported it."""

    interpreter: str
    python: str
    alembic: str
    sqlalchemy: str


def project_runtime(registry: Registry, name: str) -> Runtime:
    """Start (or reuse) the project's runner and say what it runs on; MigctlError if it cannot."""
    managed = registry.get(name)
    info = managed.scripts.runner.ensure_started()
    return Runtime(
        interpreter=" ".join(managed.database.python),
        python=info.python,
        alembic=info.alembic,
        sqlalchemy=info.sqlalchemy,
    )


def list_databases(registry: Registry, *, environment: str | None = None) -> list[DatabaseSummary]:
    """Every managed database, by name; only those of `environment` when it is given."""
    return [
        summarize(managed)
        for managed in sorted(registry.all(), key=lambda m: m.database.name)
        if environment is None or managed.database.environment == environment
    ]


def summarize(managed: Managed) -> DatabaseSummary:
    database = managed.database
    return DatabaseSummary(
        name=database.name,
        environment=database.environment,
        description=database.description,
        dialect=database.dialect,
        url=database.masked_url,
        project=Project(str(database.alembic_config), database.alembic_section),
        policy=policy(database),
        labels=dict(database.labels),
    )


def policy(database: ManagedDatabase) -> Policy:
    """The database's policy with every default applied."""
    return Policy(
        allow_downgrade=database.allows("downgrade"),
        allow_stamp=database.allows("stamp"),
        require_approval=database.needs_approval,
        approvals_required=database.approvals_required,
        approval_ttl=database.approval_ttl_seconds,
        lint=database.lint_policy,
        lock_timeout=database.effective_lock_timeout,
        statement_timeout=database.statement_timeout,
    )


def describe_database(registry: Registry, name: str) -> DatabaseDetail:
    """One database; a status that cannot be read is reported beside it, not raised."""
    managed = registry.get(name)
    status: DatabaseStatus | None = None
    problem: StatusProblem | None = None
    try:
        status = database_status(registry, name)
    except MigctlError as exc:  # a driver's or env.py's message may quote a secret
        problem = StatusProblem(exc.code, managed.redactor.redact(exc.detail))
    return DatabaseDetail(**vars(summarize(managed)), status=status, status_problem=problem)


def database_status(registry: Registry, name: str) -> DatabaseStatus:
    """Current heads against script heads, and what `upgrade heads` would apply."""
    managed = registry.get(name)
    graph = managed.graph()
    current = managed.state.current_heads(graph)
    script_heads = [info.revision for info in graph.heads()]
    unknown = graph.unknown(current)
    pending = None if unknown else [info.revision for info in graph.pending(current)]
    return DatabaseStatus(
        database=name,
        state=_state(unknown, pending),
        up_to_date=None if pending is None else not pending,
        current_heads=list(current),
        script_heads=script_heads,
        multiple_heads=len(script_heads) > 1,
        pending_count=None if pending is None else len(pending),
        pending_revisions=pending,
        unknown_revisions=unknown,
        version_table=_version_table_name(managed),
    )


def _state(unknown: list[str], pending: list[str] | None) -> SchemaState:
    if unknown or pending is None:
        return SchemaState.UNKNOWN_REVISION
    return SchemaState.BEHIND if pending else SchemaState.UP_TO_DATE


def _version_table_name(managed: Managed) -> str | None:
    table = managed.state.version_table
    if table is None:
        return None
    return f"{table.schema}.{table.name}" if table.schema else table.name
