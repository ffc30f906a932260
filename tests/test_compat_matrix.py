"""The compatibility matrix: on each cached venv (tests/matrix.py), migctl answers as that venv's
own alembic CLI does, on SQLite and PostgreSQL, and leaves the venv as it found it."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from service.api.context import SERVICES
from service.services import execution
from service.settings import ManagedDatabase
from service.worker.loop import Worker
from tests.helpers import alembic, client_for, first_token_lines, managed
from tests.matrix import ENVIRONMENTS, Environment, freeze

# The shop example's revisions use `X | Y` annotations: Python 3.10 and later, like the project.
PROJECTS = ["branched", "depends_on", "example"]
CASES = [
    pytest.param((environment, name), id=f"{environment.name}-{name}")
    for environment in ENVIRONMENTS
    for name in PROJECTS
    if name != "example" or tuple(map(int, environment.release.split("."))) >= (3, 10)
]


@pytest.fixture(params=CASES)
def case(
    request: pytest.FixtureRequest, project: Callable[[str], Path]
) -> tuple[Environment, Path]:
    """A cached venv of the matrix and a project; the venv must be there under REQUIRE_MATRIX=1
    (CI builds them)."""
    chosen, name = request.param
    if not chosen.ready:
        if os.environ.get("REQUIRE_MATRIX") == "1":
            pytest.fail(f"{chosen.name} is missing: run `python -m tests.matrix build`")
        pytest.skip(f"{chosen.name} is not built (python -m tests.matrix build)")
    return chosen, project(name)


def in_venv(database: ManagedDatabase, environment: Environment) -> ManagedDatabase:
    return dataclasses.replace(database, python=(str(environment.interpreter),))


def cli(environment: Environment, ini: Path, url: str, *args: str) -> str:
    return alembic(ini, url, *args, executable=str(environment.alembic))


def api(client: FlaskClient, path: str, **query: str) -> Any:
    response = client.get(f"/api/v1/databases/db{path}", query_string=query)
    assert response.status_code == 200, response.json
    return response.json


def test_graph_current_and_pending_equal_the_venvs_own_alembic_cli(
    case: tuple[Environment, Path], database_url: str
) -> None:
    environment, ini = case
    client = client_for(in_venv(managed("db", ini, database_url), environment))
    run = functools.partial(cli, environment, ini, database_url)
    assert [r["revision"] for r in api(client, "/heads")] == first_token_lines(run("heads"))
    assert [r["revision"] for r in api(client, "/branches")] == first_token_lines(run("branches"))
    history = [re.search(r"-> (\w+)", line) for line in run("history").splitlines()]
    revisions = [r["revision"] for r in api(client, "/revisions", page_size="100")]
    assert revisions == [m.group(1) for m in history if m]
    for target in (None, revisions[-1], "heads"):  # empty, the oldest revision, every head
        if target is not None:
            run("upgrade", target)
        shown = sorted(r["revision"] for r in api(client, "/current")["revisions"])
        assert shown == sorted(first_token_lines(run("current")))
    run("downgrade", revisions[-1])
    pending = [r["revision"] for r in api(client, "/pending")["revisions"]]
    upgrade = run("upgrade", f"{revisions[-1]}:heads", "--sql")
    assert pending == re.findall(r"^-- Running upgrade .*-> (\w+)$", upgrade, flags=re.MULTILINE)


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_previews_are_byte_identical_to_the_venvs_alembic_sql(
    case: tuple[Environment, Path], tmp_path: Path, dialect: str
) -> None:
    environment, ini = case
    unused = f"sqlite:///{tmp_path / 'unused.db'}"
    client = client_for(in_venv(managed("db", ini, unused), environment))
    upgrade = api(client, "/sql", dialect=dialect, **{"from": "base"})
    assert upgrade["sql"] == cli(environment, ini, f"{dialect}://", "upgrade", "heads", "--sql")
    query = {"action": "downgrade", "from": "heads", "to": "base", "dialect": dialect}
    downgrade = api(client, "/sql", **query)
    expected = cli(environment, ini, f"{dialect}://", "downgrade", "heads:base", "--sql")
    assert downgrade["sql"] == expected


def post(client: FlaskClient, **body: str) -> int:
    response = client.post("/api/v1/databases/db/operations", json=body)
    assert response.status_code == 202, response.json
    return int(response.json["id"])


def run_next(client: FlaskClient) -> Any:
    """What `migctl worker` does for one operation, in this process; returns the operation."""
    services = client.application.extensions[SERVICES]
    worker = Worker(services.settings, services)
    record = execution.claim_next(services.store, worker.worker_id, 30)
    assert record is not None, "nothing to claim"
    worker._run(record)
    return client.get(f"/api/v1/operations/{record.id}").json


def schema(url: str) -> dict[str, Any]:
    """Tables, columns (name, type, nullability), indexes and the version table's rows."""
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        tables: dict[str, Any] = {
            name: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(name)),
            )
            for name in sorted(inspector.get_table_names())
        }
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return {"tables": tables, "versions": sorted(versions.scalars())}
    finally:
        engine.dispose()


def test_a_queued_upgrade_and_downgrade_leave_the_schema_the_venvs_cli_leaves(
    case: tuple[Environment, Path], make_database: Callable[[], str]
) -> None:
    environment, ini = case
    queued, by_cli = make_database(), make_database()
    client = client_for(in_venv(managed("db", ini, queued), environment))
    post(client, action="upgrade", revision="heads")
    assert run_next(client)["status"] == "succeeded"
    cli(environment, ini, by_cli, "upgrade", "heads")
    assert schema(queued) == schema(by_cli)
    first = api(client, "/revisions", page_size="100")[-1]["revision"]
    post(client, action="downgrade", revision=first)
    done = run_next(client)
    assert done["status"] == "succeeded" and done["heads_after"] == [first]
    cli(environment, ini, by_cli, "downgrade", first)
    assert schema(queued) == schema(by_cli)
    built = (environment.folder / "complete").read_text()
    assert freeze(environment) == built, "running the project changed its venv"
