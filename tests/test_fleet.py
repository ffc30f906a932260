"""Fleet views: labels, the cached state workers keep, and the counts /fleet gives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.api.context import SERVICES
from service.errors import ConfigError
from service.services import execution, fleet
from service.settings import Settings
from service.worker.loop import Worker
from tests.helpers import client_for, managed, stamp


def _fleet_client(ini: Path, make: Callable[[], str]):
    urls = [make() for _ in range(3)]
    stamp(urls[0], "a4000004")
    stamp(urls[1], "a2000002")
    stamp(urls[2], "ffff0000")  # a revision the scripts do not know
    return client_for(
        managed("eu-1", ini, urls[0], environment="production", labels={"region": "eu"}),
        managed("eu-2", ini, urls[1], environment="production", labels={"region": "eu"}),
        managed("us-1", ini, urls[2], environment="staging", labels={"region": "us"}),
        managed("broken", ini, "postgresql+psycopg2://nobody@127.0.0.1:1/none"),
    )


def test_the_fleet_counts_databases_per_environment_and_state_once_a_worker_read_them(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = _fleet_client(project("linear"), make_database)
    before = client.get("/api/v1/fleet").json
    assert before["by_environment"]["production"] == {"unknown": 2}

    services = client.application.extensions[SERVICES]
    assert fleet.refresh_states(services.registry, services.store, 60) == 4
    assert fleet.refresh_states(services.registry, services.store, 60) == 0  # still fresh

    body = client.get("/api/v1/fleet").json
    assert body["databases"] == 4
    assert body["by_environment"] == {
        "": {"unavailable": 1},
        "production": {"behind": 1, "up_to_date": 1},
        "staging": {"unknown_revision": 1},
    }
    assert body["not_up_to_date"] == ["broken", "eu-2", "us-1"]
    assert body["running_operations"] == {} and body["failed"] == []


def test_databases_are_filtered_by_cached_state_environment_and_labels(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = _fleet_client(project("linear"), make_database)
    services = client.application.extensions[SERVICES]
    fleet.refresh_states(services.registry, services.store, 60)

    def names(**query: object) -> list[str]:
        response = client.get("/api/v1/databases", query_string=query)
        assert response.status_code == 200, response.json
        return [item["name"] for item in response.json]

    assert names(label="region=eu") == ["eu-1", "eu-2"]
    assert names(label="region") == ["eu-1", "eu-2", "us-1"]
    assert names(label=["region=eu", "region=us"]) == []
    assert names(state="behind") == ["eu-2"]
    assert names(state="up_to_date", environment="production") == ["eu-1"]
    assert names(state="unavailable") == ["broken"]
    listed = client.get("/api/v1/databases", query_string={"state": "behind"}).json[0]
    assert listed["labels"] == {"region": "eu"}


def test_an_unknown_state_filter_is_a_validation_problem(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = client_for(managed("db", project("linear"), make_database()))
    response = client.get("/api/v1/databases", query_string={"state": "sideways"})
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("labels", ['"eu"', "{ region = 1 }", '{ "bad key" = "x" }'])
def test_labels_that_are_not_a_table_of_strings_stop_migctl_at_start(
    tmp_path: Path, project: Callable[[str], Path], labels: str
) -> None:
    ini = project("linear")
    file = tmp_path / "databases.toml"
    file.write_text(
        f'[databases.a]\nurl = "sqlite:///a.db"\nalembic_config = "{ini}"\nlabels = {labels}\n'
    )
    with pytest.raises(ConfigError, match="labels"):
        Settings.from_env({"MIGCTL_DATABASES_FILE": str(file)})


def test_a_database_is_read_again_as_soon_as_one_of_its_operations_ends(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = client_for(managed("db", project("linear"), make_database()))
    services = client.application.extensions[SERVICES]
    fleet.refresh_states(services.registry, services.store, 3600)
    assert client.get("/api/v1/fleet").json["not_up_to_date"] == ["db"]
    queued = client.post(
        "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
    )
    worker = Worker(services.settings, services)
    record = execution.claim_next(services.store, worker.worker_id, 30)
    assert record is not None and record.id == queued.json["id"]
    worker._run(record)

    assert fleet.refresh_states(services.registry, services.store, 3600) == 1  # not stale by age
    body = client.get("/api/v1/fleet").json
    assert body["not_up_to_date"] == [] and body["by_environment"] == {"": {"up_to_date": 1}}
