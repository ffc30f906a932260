"""Read pages: the fleet, one database with its revision graph, one revision with its SQL."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from service.api.context import control_store, current_principal, preview_cache, registry
from service.console.blueprint import console
from service.console.graph import layout
from service.console.highlight import sql_html
from service.errors import MigctlError
from service.services import databases, previews, revisions
from service.services import operations as operations_service
from service.services.safety.lint import with_lint

DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb", "mssql", "oracle")
ALL = 1_000_000  # every revision: the graph page draws them all


@console.route("/")
def fleet() -> ResponseReturnValue:
    environment = request.args.get("environment") or None
    state = request.args.get("state") or None
    found = [
        databases.describe_database(registry(), summary.name)
        for summary in databases.list_databases(registry(), environment=environment)
    ]
    if state:
        found = [d for d in found if _state(d) == state]
    return render_template(
        "console/fleet.html",
        databases=found,
        environments=sorted({d.environment for d in databases.list_databases(registry())}),
        environment=environment,
        state=state,
        running=_operations("running"),
        failed=_operations("failed"),
    )


@console.route("/databases/<name>")
def database(name: str) -> ResponseReturnValue:
    detail = databases.describe_database(registry(), name)
    page = revisions.list_revisions(registry(), name, first=0, last=ALL)
    current = detail.status.current_heads if detail.status else []
    return render_template(
        "console/database.html",
        db=detail,
        graph=layout(page.items, set(current)),
        pending=detail.status.pending_revisions if detail.status else None,
        operations=_operations(None, database=name),
    )


@console.route("/databases/<name>/revisions/<rev>")
def revision(name: str, rev: str) -> ResponseReturnValue:
    info = revisions.get_revision(registry(), name, rev)
    dialect = request.args.get("dialect") if request.args.get("dialect") in DIALECTS else None
    start = ",".join(info.down_revisions) or "base"
    try:
        preview = previews.preview_sql(
            registry(), preview_cache(), name, from_=start, to=info.revision, dialect=dialect
        )
        preview = with_lint(registry(), preview)
        sql, lint, problem = sql_html(preview.sql), preview.lint, None
    except MigctlError as exc:
        sql, lint, problem = None, None, exc
    return render_template(
        "console/revision.html",
        db_name=name,
        info=info,
        dialects=DIALECTS,
        dialect=dialect or (preview.dialect if sql is not None else None),
        sql=sql,
        lint=lint,
        problem=problem,
    )


def _state(detail: databases.DatabaseDetail) -> str:
    return str(detail.status.state) if detail.status else "unreadable"


def _operations(status: str | None, database: str | None = None) -> list[object]:
    records, _total = operations_service.list_operations(
        control_store(),
        filters={"status": status, "database": database},
        principal=current_principal(),
        first=0,
        last=9,
    )
    return list(records)
