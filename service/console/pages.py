"""Read pages: the fleet, one database with its revision graph, one revision with its SQL."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask.typing import ResponseReturnValue

from service.api.context import control_store, current_principal, preview_cache, registry
from service.console.blueprint import console
from service.console.graph import layout
from service.console.highlight import sql_html
from service.errors import MigctlError
from service.services import databases, previews, revisions
from service.services import fleet as fleet_service
from service.services import operations as operations_service
from service.services.access import GRANTS, Permission
from service.services.fleet import STATES
from service.services.safety import checksums
from service.services.safety.lint import with_lint

DIALECTS = ("postgresql", "sqlite", "mysql", "mariadb", "mssql", "oracle")
ALL = 1_000_000  # every revision: the graph page draws them all


@console.route("/")
def fleet() -> ResponseReturnValue:
    """Every database from the states workers cached: no env.py runs for this page."""
    environment = request.args.get("environment") or None
    state = request.args.get("state") if request.args.get("state") in STATES else None
    labels = [label for label in request.args.getlist("label") if label][:8]
    return render_template(
        "console/fleet.html",
        entries=fleet_service.fleet_entries(
            registry(), control_store(), state=state, environment=environment, labels=labels
        ),
        summary=fleet_service.fleet(registry(), control_store()),
        states=STATES,
        environment=environment,
        state=state,
        labels=labels,
        running=_operations("running"),
        failed=_operations("failed"),
    )


@console.route("/databases/<dbname:name>")
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
        files=_verification(name),
        may_upgrade=Permission.UPGRADE in GRANTS[current_principal().role],
    )


def _verification(name: str) -> checksums.Verification | MigctlError:
    """Whether the applied revision files are still what ran (GET .../verify)."""
    try:
        return checksums.verify(registry(), control_store(), name)
    except MigctlError as exc:
        return exc


@console.route("/databases/<dbname:name>/revisions/<revspec:rev>")
def revision(name: str, rev: str) -> ResponseReturnValue:
    info = revisions.get_revision(registry(), name, rev)
    dialect = request.args.get("dialect") if request.args.get("dialect") in DIALECTS else None
    return render_template(
        "console/revision.html",
        db_name=name,
        info=info,
        dialects=DIALECTS,
        **_revision_sql(name, info, dialect),
    )


def _revision_sql(name: str, info: revisions.RevisionInfo, dialect: str | None) -> dict[str, Any]:
    """The SQL of this revision alone (from its down revisions), highlighted, and its lint."""
    start = ",".join(info.down_revisions) or "base"
    try:
        preview = previews.preview_sql(
            registry(), preview_cache(), name, from_=start, to=info.revision, dialect=dialect
        )
    except MigctlError as exc:
        return {"dialect": dialect, "sql": None, "lint": None, "problem": exc}
    lint = with_lint(registry(), preview).lint
    return {"dialect": preview.dialect, "sql": sql_html(preview.sql), "lint": lint, "problem": None}


def _operations(status: str | None, database: str | None = None) -> list[object]:
    records, _total = operations_service.list_operations(
        control_store(),
        filters={"status": status, "database": database},
        principal=current_principal(),
        first=0,
        last=9,
    )
    return list(records)
