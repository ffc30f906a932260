"""Hostile input: specs that trip Alembic, bodies that trip parsers, odd ids and media types.

Every one of them is a 4xx problem with a stable code, never a 500, and every refused POST
leaves an `operation.refused` audit event whose details are valid JSON on either backend.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from service.api.app import create_app
from service.secrets import Secret
from service.services.control import upgrade_control_schema
from service.store.db import ControlStore
from tests.helpers import PostgresServer, fresh_control_url, managed, settings_for
from tests.serving import served_process, wait_for
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


def deep(levels: int) -> str:
    return '{"action": "upgrade", "revision": "heads", "reason": ' + "[" * levels + "]" * levels


HOSTILE_BODIES = {
    "nested 5,000 deep": (deep(5000) + "}", 400, "bad-request"),
    "a 5,001-digit number": ('{"action": "upgrade", "revision": "heads", "reason": 1' + "0" * 5000
                             + "}", 400, "bad-request"),
    "a NUL in the reason": (json.dumps({"action": "upgrade", "revision": "heads",
                                        "reason": "a\u0000b"}), 422, "validation-failed"),
    "a lone surrogate": ('{"action": "upgrade", "revision": "heads", "reason": "\\ud800"}', 422,
                         "validation-failed"),
    "a NUL in a field name": ('{"action": "upgrade", "revision": "heads", "\\u0000\\udfff": 1}',
                              422, "validation-failed"),
    "not JSON at all": ("{'action': 'upgrade'", 400, "bad-request"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_bodies_are_4xx_problems_and_every_refusal_is_audited(
    client_at: Callable[..., FlaskClient], name: str
) -> None:
    body, status, code = HOSTILE_BODIES[name]
    client = client_at()
    response = client.post(OPERATIONS, data=body, content_type="application/json")
    assert_problem(response, (status,), {code})
    (event,) = refusals(client)
    assert event["database"] == "db" and event["details"]["code"] == code


def test_every_audit_row_is_json_whose_code_the_database_itself_can_read(
    client_at: Callable[..., FlaskClient], control_url: str
) -> None:
    client = client_at()
    for body, _status, _code in HOSTILE_BODIES.values():
        client.post(OPERATIONS, data=body, content_type="application/json")
    for reason in ("a\u0000b", "\ud800", "x" * 5000):
        client.post(OPERATIONS, json={"action": "upgrade", "revision": "nope", "reason": reason})
    client.post(OPERATIONS, json={"action": "upgrade", "revision": "nope\u0000"})
    engine = sa.create_engine(control_url)
    postgresql = engine.dialect.name == "postgresql"
    code = "details->>'code'" if postgresql else "json_extract(details, '$.code')"
    with engine.connect() as connection:
        codes = connection.execute(sa.text(f"SELECT {code} FROM migctl_audit_events")).scalars()
        assert all(codes.all()) and len(refusals(client)) == len(HOSTILE_BODIES) + 4
    engine.dispose()


def raw_post(url: str, head: str, body: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cwd = tmp_path_factory.mktemp("served")
    with served_process(cwd, {}, "--no-worker", "--workers", "1") as url:
        wait_for(f"{url}/health/live")
        yield url


@pytest.mark.parametrize(
    "body",
    [b"zzz\r\ngarbage\r\n", b"2\r\n{}XX0\r\n\r\n", b"-5\r\nhello\r\n0\r\n\r\n"],
    ids=["not a size", "no terminator", "negative size"],
)
def test_a_malformed_chunked_body_is_a_400_problem_from_a_real_server(
    server: str, body: bytes
) -> None:
    head = (
        "POST /api/v1/databases/example/operations HTTP/1.1\r\nHost: migctl\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    )
    answer = raw_post(server, head, body)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer
    problem = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert problem["code"] == "bad-request"


def test_operation_ids_are_ascii_digits_only_in_paths_and_queries(
    client_at: Callable[..., FlaskClient],
) -> None:
    client = client_at()
    queued = client.post(OPERATIONS, json={"action": "upgrade", "revision": "heads"})
    assert queued.json["id"] == 1
    assert client.get("/api/v1/operations/1").status_code == 200
    for digits in ("\u0661", "\u0967", "\uff11", "\U0001d7cf", "1_0"):  # Arabic-Indic ... 1
        assert_problem(client.get(f"/api/v1/operations/{digits}"), (404,), {"not-found"})
        cancel = client.post(f"/api/v1/operations/{digits}/cancel")
        assert_problem(cancel, (404,), {"not-found"})
        for key in ("operation_id", "before", "limit"):
            listed = client.get("/api/v1/audit-events", query_string={key: digits})
            assert_problem(listed, (422,), {"validation-failed"})
    assert_problem(client.get("/api/v1/operations/99999999999"), (404,), {"not-found"})


def test_a_body_that_is_not_declared_json_is_a_415_naming_the_expected_type(
    client_at: Callable[..., FlaskClient],
) -> None:
    client = client_at()
    body = json.dumps({"action": "upgrade", "revision": "heads"})
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        response = client.post(OPERATIONS, data=body, content_type=content_type)
        assert_problem(response, (415,), {"unsupported-media-type"})
        assert "application/json" in response.json["detail"]
    assert len(refusals(client)) == 3
    queued = client.post(OPERATIONS, data=body, content_type="application/json")
    assert queued.status_code == 202
    cancelled = client.post(f"/api/v1/operations/{queued.json['id']}/cancel")  # no body, no type
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
