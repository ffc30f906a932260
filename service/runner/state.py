"""A database's current heads and version table, read through env.py without writing."""

from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext

from .engines import create_engine
from .errors import RunnerError, env_py_failure
from .project import Project
from .sandbox import overlaid_environ


def discover(project: Project, request: dict[str, Any]) -> dict[str, Any]:
    """Run env.py online with dont_mutate=True: it names its version table and heads."""
    found: dict[str, Any] = {}

    def read_only(heads: Any, context: MigrationContext, connection: sa.Connection) -> None:
        found.setdefault("heads", list(heads))
        found.setdefault("version_table", context.version_table)
        found.setdefault("version_table_schema", context.version_table_schema)
        found.setdefault("accepts_connection", context.connection is connection)

    run_env_read_only(project, request, read_only)
    if "version_table" not in found:
        raise RunnerError(
            "project-unavailable",
            "env.py never called context.run_migrations(), so its state cannot be read.",
            path=project.env_py,
        )
    return found


def run_env_read_only(
    project: Project,
    request: dict[str, Any],
    instead: Callable[[Any, MigrationContext, sa.Connection], None],
) -> None:
    """Run env.py online with dont_mutate=True on a connection handed over, calling
    `instead(heads, context, connection)` where it would migrate; nothing is written."""
    script = project.loaded(request["signature"])
    url = request["url"]
    engine = create_engine(url, migrating=False)
    try:
        with _connected(engine, request["database"]) as connection:

            def fn(heads: Any, context: MigrationContext) -> list[Any]:
                instead(heads, context, connection)
                return []

            config = project.config(attributes={"connection": connection})
            config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
            with overlaid_environ(request["environ"]):
                try:
                    with EnvironmentContext(config, script, fn=fn, dont_mutate=True):
                        script.run_env()
                except (RunnerError, KeyboardInterrupt):
                    raise
                except sa.exc.SQLAlchemyError as exc:
                    raise unavailable(exc, request["database"]) from None
                except BaseException as exc:  # env.py is user code: sys.exit() too
                    raise env_py_failure(exc, project.env_py) from None
            connection.rollback()  # a reflection's transaction: nothing was written
    finally:
        engine.dispose()


def read_heads(request: dict[str, Any]) -> list[str]:
    """One SELECT on the version table env.py named (when migctl has no driver for it)."""
    engine = create_engine(request["url"], migrating=False)
    try:
        with _connected(engine, request["database"]) as connection:
            return select_heads(connection, request["version_table"], request.get("schema"))
    finally:
        engine.dispose()


def select_heads(connection: Any, name: str, schema: str | None) -> list[str]:
    version = sa.table(name, sa.column("version_num"), schema=schema)
    try:
        rows = connection.execute(sa.select(version.c.version_num)).scalars().all()
    except (sa.exc.ProgrammingError, sa.exc.OperationalError):
        connection.rollback()
        if sa.inspect(connection).has_table(name, schema=schema):
            raise
        return []  # no version table yet: nothing applied, and a read creates nothing
    return [str(row) for row in rows]


class _connected:
    """A connection whose failure to open is a database-unavailable error."""

    def __init__(self, engine: sa.engine.Engine, database: str) -> None:
        self.engine, self.database = engine, database
        self.connection: Any = None

    def __enter__(self) -> Any:
        try:
            self.connection = self.engine.connect()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise unavailable(exc, self.database) from None
        return self.connection

    def __exit__(self, *_exc: Any) -> None:
        self.connection.close()


def unavailable(exc: BaseException, database: str) -> RunnerError:
    reason = getattr(exc, "orig", None) or exc
    first_line = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
    return RunnerError("database-unavailable", f"Cannot read database {database!r}: {first_line}")
