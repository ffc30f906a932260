"""Drift: Alembic's compare_metadata between env.py's target_metadata and the live database."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from .errors import RunnerError
from .project import Project
from .state import run_env_read_only


def check(project: Project, request: dict[str, Any]) -> dict[str, Any]:
    """Run env.py online, read-only (dont_mutate), and compare instead of migrating."""
    found: dict[str, Any] = {}

    def compare(heads: Any, context: MigrationContext, _connection: sa.Connection) -> None:
        metadata = context.opts.get("target_metadata")
        found["heads"] = list(heads)
        if metadata is None:
            found["diffs"] = None
        else:
            dialect = context.dialect
            found["diffs"] = [_item(d, dialect) for d in compare_metadata(context, metadata)]

    run_env_read_only(project, request, compare)
    if "diffs" not in found:
        raise RunnerError(
            "project-unavailable",
            "env.py never called context.run_migrations(), so nothing could be compared.",
            path=project.env_py,
        )
    if found["diffs"] is None:
        raise RunnerError(
            "no-target-metadata",
            "env.py sets no target_metadata (context.configure(target_metadata=...)): there "
            "are no models to compare the database with.",
        )
    return found


def _item(diff: Any, dialect: Any) -> dict[str, Any]:
    """One difference as JSON: Alembic gives tuples, or a list of tuples for column changes."""
    if isinstance(diff, list):
        items = [_item(part, dialect) for part in diff]
        return items[0] if len(items) == 1 else {"kind": "modify_column", "changes": items}
    kind = str(diff[0])
    if kind in ("add_table", "remove_table"):
        table = diff[1]
        return {"kind": kind, "schema": table.schema, "table": table.name}
    if kind in ("add_column", "remove_column"):
        _kind, schema, table, column = diff
        return {
            "kind": kind,
            "schema": schema,
            "table": table,
            "column": column.name,
            "type": _type(column.type, dialect),
            "nullable": bool(column.nullable),
        }
    if kind.startswith("modify_"):
        _kind, schema, table, column, _existing, old, new = diff
        return {
            "kind": kind,
            "schema": schema,
            "table": table,
            "column": column,
            "from": _value(old, dialect),
            "to": _value(new, dialect),
        }
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        return {
            "kind": kind,
            "table": index.table.name if index.table is not None else None,
            "name": index.name,
            "columns": [getattr(c, "name", str(c)) for c in index.expressions],
            "unique": bool(index.unique),
        }
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        constraint = diff[1]
        table = getattr(constraint, "table", None)
        return {
            "kind": kind,
            "table": table.name if table is not None else None,
            "name": constraint.name,
            "columns": [c.name for c in getattr(constraint, "columns", ())],
        }
    return {"kind": kind, "detail": repr(diff)[:500]}


def _type(type_: Any, dialect: Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # a type the dialect cannot render: its Python repr says enough
        return repr(type_)


def _value(value: Any, dialect: Any) -> Any:
    if isinstance(value, sa.types.TypeEngine):
        return _type(value, dialect)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(getattr(value, "arg", value))  # a server default's text
