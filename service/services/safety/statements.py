"""Checks of parsed PostgreSQL statements (pglast: PostgreSQL's own parser) against the rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError, parse_sql_json

AT = enums.AlterTableType
CON = enums.ConstrType
OBJ = enums.ObjectType

# Functions whose value differs per row: a default calling one rewrites the table.
VOLATILE_FUNCTIONS = frozenset(
    {
        "clock_timestamp",
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "nextval",
        "timeofday",
        "txid_current",
    }
)
# Targets of ALTER COLUMN TYPE that never rewrite when widening (still ACCESS EXCLUSIVE).
_NO_REWRITE_TYPES = frozenset({"text", "varchar"})


# Constraints that build an index under ACCESS EXCLUSIVE unless given one (USING INDEX).
_INDEX_BUILDING = (CON.CONSTR_UNIQUE, CON.CONSTR_PRIMARY)
_TABLE_SCANNING = (CON.CONSTR_FOREIGN, CON.CONSTR_CHECK, *_INDEX_BUILDING)


@dataclass(frozen=True)
class Hit:
    """A statement that breaks a rule; `offset` is where it starts in the checked text."""

    rule: str
    statement: str
    offset: int
    severity: str | None = None  # the rule's own unless set


@dataclass
class RangeState:
    """What earlier statements of the range did: new tables are empty, timeouts last."""

    created_tables: set[str] = field(default_factory=set)
    lock_timeout_set: bool = False


# Statements that may break a rule; the others (CREATE TABLE, INSERT, UPDATE ...) are read
# from the parser's JSON without building pglast's Python tree, which cost 7x the parse.
_CHECKED_KINDS = frozenset({"AlterTableStmt", "IndexStmt", "DropStmt", "RenameStmt"})
_ON_EXISTING_TABLES = frozenset({"AlterTableStmt", "IndexStmt", "RenameStmt"})


def check_sql(sql: str, state: RangeState) -> Iterator[Hit]:
    """Every rule the statements of `sql` break, in order; updates `state` as it goes."""
    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError as exc:
        yield Hit("unparsable-sql", f"{sql.strip()[:200]} ({exc})", 0)
        return
    encoded = sql.encode()  # the parser's locations count bytes
    for raw in tree.get("stmts", ()):
        [(kind, body)] = raw["stmt"].items()
        if kind == "CreateStmt":
            state.created_tables.add(str(body.get("relation", {}).get("relname")))
        elif kind == "VariableSetStmt" and body.get("name") == "lock_timeout":
            state.lock_timeout_set = True
        elif kind in _ON_EXISTING_TABLES and _new_table(body, state):
            continue  # a table created earlier in the range is empty: nothing to check
        elif kind in _CHECKED_KINDS:
            start = raw.get("stmt_location", 0)
            length = raw.get("stmt_len", 0)  # 0: up to the end
            text = encoded[start : start + length if length else len(encoded)].decode()
            offset = len(encoded[:start].decode())
            for rule, severity in _check(parse_sql(text)[0].stmt, state):
                yield Hit(rule, text.strip(), offset, severity)


def _new_table(body: dict[str, Any], state: RangeState) -> bool:
    relation = body.get("relation")
    return relation is not None and relation.get("relname") in state.created_tables


def _check(stmt: Any, state: RangeState) -> Iterator[tuple[str, str | None]]:
    if isinstance(stmt, ast.VariableSetStmt) and stmt.name == "lock_timeout":
        state.lock_timeout_set = True
    elif isinstance(stmt, ast.CreateStmt) and stmt.relation is not None:
        state.created_tables.add(str(stmt.relation.relname))
    elif isinstance(stmt, ast.AlterTableStmt) and _existing(stmt.relation, state):
        yield from _locking(state)
        for command in stmt.cmds or ():
            yield from _alter_command(command)
    elif isinstance(stmt, ast.IndexStmt) and _existing(stmt.relation, state):
        if not stmt.concurrent:
            yield from _locking(state)
            yield "non-concurrent-index-creation", None
    elif isinstance(stmt, ast.DropStmt):
        yield from _drop(stmt, state)
    elif isinstance(stmt, ast.RenameStmt) and _existing(stmt.relation, state):
        yield from _locking(state)
        if stmt.renameType == OBJ.OBJECT_COLUMN:
            yield "renaming-column", None
        elif stmt.renameType == OBJ.OBJECT_TABLE:
            yield "renaming-table", None


def _alter_command(command: Any) -> Iterator[tuple[str, str | None]]:
    kind = command.subtype
    if kind == AT.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
        yield from _new_column(command.def_)
    elif kind == AT.AT_SetNotNull:
        yield "setting-not-null", None
    elif kind == AT.AT_AlterColumnType:
        yield "changing-column-type", _type_change_severity(command.def_)
    elif kind == AT.AT_DropColumn:
        yield "dropping-column", None
    elif kind == AT.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
        yield from _constraint(command.def_)


def _new_column(column: Any) -> Iterator[tuple[str, str | None]]:
    constraints = list(column.constraints or ())
    kinds = {c.contype for c in constraints}
    if CON.CONSTR_NOTNULL in kinds and CON.CONSTR_DEFAULT not in kinds:
        yield "adding-required-column", None
    for constraint in constraints:
        if constraint.contype == CON.CONSTR_DEFAULT and _volatile(constraint.raw_expr):
            yield "volatile-default", None
        elif constraint.contype in _TABLE_SCANNING:
            yield from _constraint(constraint)


def _constraint(constraint: Any) -> Iterator[tuple[str, str | None]]:
    if constraint.contype == CON.CONSTR_FOREIGN and not constraint.skip_validation:
        yield "foreign-key-without-not-valid", None
    elif constraint.contype == CON.CONSTR_CHECK and not constraint.skip_validation:
        yield "check-without-not-valid", None
    elif constraint.contype in _INDEX_BUILDING and not constraint.indexname:
        yield "unique-constraint-without-index", None


def _drop(stmt: Any, state: RangeState) -> Iterator[tuple[str, str | None]]:
    names = [_qualified_last(obj) for obj in stmt.objects or ()]
    if stmt.removeType == OBJ.OBJECT_TABLE:
        if any(name not in state.created_tables for name in names):
            yield from _locking(state)
            yield "dropping-table", None
    elif stmt.removeType == OBJ.OBJECT_INDEX and not stmt.concurrent:
        yield from _locking(state)
        yield "non-concurrent-index-deletion", None


def _locking(state: RangeState) -> Iterator[tuple[str, str | None]]:
    """The first statement that locks an existing table without a bounded wait."""
    if not state.lock_timeout_set:
        state.lock_timeout_set = True  # said once per range, at the first offender
        yield "missing-lock-timeout", None


def _existing(relation: Any, state: RangeState) -> bool:
    return relation is None or relation.relname not in state.created_tables


def _volatile(expression: Any) -> bool:
    if isinstance(expression, ast.FuncCall):
        names: Any = expression.funcname
        name = str(names[-1].sval).lower()
        return name in VOLATILE_FUNCTIONS or any(_volatile(a) for a in expression.args or ())
    if isinstance(expression, ast.TypeCast):
        return _volatile(expression.arg)
    return False


def _type_change_severity(column: Any) -> str | None:
    names: Any = column.typeName.names if column is not None else ()
    type_name = names[-1].sval if names else ""
    no_using = column is not None and column.raw_default is None
    return "warning" if type_name in _NO_REWRITE_TYPES and no_using else None


def _qualified_last(obj: Any) -> str:
    items = obj if isinstance(obj, tuple) else (obj,)
    last = items[-1]
    return str(getattr(last, "sval", last))
