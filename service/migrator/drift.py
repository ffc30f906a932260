"""Drift: the project's runner compares env.py's target_metadata with the live database."""

from __future__ import annotations

from typing import Any

from service.errors import MigctlError, redacted
from service.migrator.scripts import ProjectScripts, RevisionGraph
from service.migrator.state import env_py_environ
from service.settings import ManagedDatabase


def compare_models(
    scripts: ProjectScripts, graph: RevisionGraph, database: ManagedDatabase
) -> dict[str, Any]:
    """{"heads": [...], "diffs": [...]}: read-only (env.py runs with dont_mutate), bounded by
    the runner's request timeout; NoTargetMetadataError when env.py names no models."""
    url = database.url.reveal()
    try:
        found: dict[str, Any] = scripts.runner.request(
            "drift",
            signature=graph.generation,
            database=database.name,
            url=url,
            environ=env_py_environ(database, url),
        )
    except MigctlError as exc:
        raise redacted(exc, database.secret_values()) from None
    return found
