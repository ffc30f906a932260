"""Hostile input: specs that trip Alembic, bodies that trip parsers, odd ids and media types.

Every one of them is a 4xx problem with a stable code, never a 500, and every refused POST
leaves an `operation.refused` audit event whose details are valid JSON on either backend.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.api.app import create_app
from service.secrets import Secret
from service.services.control import upgrade_control_schema
from service.store.db import ControlStore
from tests.conftest import PostgresServer, fresh_control_url, managed, settings_for
from tests.test_revision_specs import stamp

PROBLEM = "application/problem+json"
OPERATIONS = "/api/v1/databases/db/operations"
# Specs the grammar lets through that made Alembic raise AssertionError (or walk far).
CRASHING_SPECS = (
    "@",
    "@@",
    "x@",
    "head+1",
    "heads+1",
    "head-999999",
    "base+999999",
    "a1000002+999999999999999999999",
)
SPEC_CODES = {"revision-unresolvable", "invalid-relative-step", "revision-not-found"}


@pytest.fixture
def control_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A migrated control database of the test's backend."""
    if backend == "sqlite":
        return fresh_control_url()
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    store = ControlStore(url)
    upgrade_control_schema(store)
    store.dispose()
    return url


@pytest.fixture
def client_at(
    project: Callable[[str], Path], database_url: str, control_url: str
) -> Callable[..., FlaskClient]:
    """A client of the linear project, its database stamped at `revisions`."""

    def make(*revisions: str) -> FlaskClient:
        if revisions:
            stamp(database_url, *revisions)
        database = managed("db", project("linear"), database_url)
        settings = settings_for(database, control_database_url=Secret(control_url))
        return create_app(settings).test_client()

    return make


def refusals(client: FlaskClient) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit-events", query_string={"action": "operation.refused"})
    assert response.status_code == 200, response.json
    return list(response.json)


def assert_problem(response: Any, statuses: tuple[int, ...], codes: set[str]) -> None:
    assert response.status_code in statuses, (response.status_code, response.get_data())
    assert response.content_type == PROBLEM
    assert response.json["code"] in codes, response.json


def read_requests(spec: str) -> list[tuple[str, dict[str, str] | None]]:
    base = "/api/v1/databases/db"
    return [
        (f"{base}/pending", {"to": spec}),
        (f"{base}/revisions/{spec}", None),
        (f"{base}/sql", {"to": spec}),
        (f"{base}/sql", {"action": "downgrade", "to": spec}),
        (f"{base}/sql", {"action": "stamp", "to": spec}),
        (f"{base}/sql", {"from": spec}),
    ]


@pytest.mark.parametrize("current", [(), ("a2000002",), ("a4000004",)])
def test_specs_that_trip_alembic_are_422_problems_on_every_read_endpoint(
    client_at: Callable[..., FlaskClient], current: tuple[str, ...]
) -> None:
    client = client_at(*current)
    for spec in CRASHING_SPECS:
        for path, query in read_requests(spec):
            response = client.get(path, query_string=query)
            assert_problem(response, (404, 409, 422), SPEC_CODES | {"multiple-heads"})


@pytest.mark.parametrize("action", ["upgrade", "downgrade", "stamp"])
def test_operations_to_such_specs_are_refused_with_a_problem_and_audited(
    client_at: Callable[..., FlaskClient], action: str
) -> None:
    client = client_at()
    for spec in CRASHING_SPECS:
        response = client.post(OPERATIONS, json={"action": action, "revision": spec})
        assert_problem(response, (404, 422), SPEC_CODES)
    events = refusals(client)
    assert len(events) == len(CRASHING_SPECS)
    assert {e["details"]["revision"] for e in events} == set(CRASHING_SPECS)
    assert all(e["details"]["code"] in SPEC_CODES for e in events)


def test_a_huge_relative_step_is_refused_at_once_before_alembic_walks_it(
    client_at: Callable[..., FlaskClient],
) -> None:
    client = client_at("a2000002")
    for spec in ("a1000002+999999999999999999999", "head-999999", "-10001", "+99999"):
        started = time.monotonic()
        response = client.get("/api/v1/databases/db/pending", query_string={"to": spec})
        assert time.monotonic() - started < 1
        assert_problem(response, (422,), {"invalid-relative-step"})
        assert "10000" in response.json["detail"].replace(",", "")
