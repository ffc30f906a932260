"""The managed databases, each with its (shared) project, runner and state reader."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from service.errors import DatabaseNotFoundError
from service.migrator.runners import RunnerKey, RunnerOptions, RunnerPool, runner_environ
from service.migrator.scripts import ProjectScripts, RevisionGraph
from service.migrator.state import DatabaseState
from service.secrets import Redactor
from service.services.redaction import redactor_for
from service.settings import ManagedDatabase, Settings


@dataclass(frozen=True)
class Managed:
    """One managed database and the migrator objects that answer questions about it."""

    database: ManagedDatabase
    scripts: ProjectScripts
    state: DatabaseState
    # Its own secrets only: previews and step SQL can be long, and cost grows with secrets.
    redactor: Redactor

    def graph(self) -> RevisionGraph:
        return self.scripts.graph()


class Registry:
    """Looks managed databases up by name; starts no runner until it is asked something."""

    def __init__(self, settings: Settings) -> None:
        timeout = settings.runner_timeout_seconds
        self.runners = RunnerPool(
            RunnerOptions(
                start_timeout=timeout,
                request_timeout=timeout,
                environ=runner_environ(settings.runner_environ),
            )
        )
        projects: dict[RunnerKey, ProjectScripts] = {}
        self._managed: dict[str, Managed] = {}
        self.redactor = redactor_for(settings)  # every secret: for text about any database
        for database in settings.databases:
            key = RunnerKey(database.python, database.alembic_config, database.alembic_section)
            # Databases sharing a project and an interpreter share its runner and its graph.
            if key not in projects:
                runner = self.runners.runner(key)
                projects[key] = ProjectScripts(
                    key.ini, key.section, runner, settings.script_rescan_seconds
                )
            scripts = projects[key]
            self._managed[database.name] = Managed(
                database,
                scripts,
                DatabaseState(database, scripts),
                Redactor(database.secret_values()),
            )

    def get(self, name: str) -> Managed:
        try:
            return self._managed[name]
        except KeyError:
            raise DatabaseNotFoundError(name) from None

    def limited_to(self, names: frozenset[str] | None) -> Registry:
        """A view that knows only `names` (all databases when None); caches are shared."""
        if names is None:
            return self
        view = copy.copy(self)
        view._managed = {name: m for name, m in self._managed.items() if name in names}
        return view

    def all(self) -> list[Managed]:
        return list(self._managed.values())

    def close(self) -> None:
        for managed in self._managed.values():
            managed.state.dispose()
        self.runners.close()
