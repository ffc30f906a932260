"""Fuzzing: every operation of the committed OpenAPI spec, with a token, against the app.

No answer may be a 5xx, and every answer must be one the spec documents: its status, its
media type, its body and its headers. Bounded and derandomized, so CI runs the same cases.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error

from service.api.app import create_app
from service.services.access import Role
from service.services.tokens import new_token, token_entry
from tests.helpers import EXAMPLE, alembic, managed, settings_for

SPEC = Path(__file__).parent.parent / "openapi" / "openapi.json"
DATABASE = "example"
# The same project on a file that is no database: the 503s and the unknown states.
BROKEN = "broken"
# Where the database stands: the fork, so current, pending and branches all have content.
START_AT = "4f2c9d81a6e3"
REVISION_SPECS = ("head", "heads", "base", "-1", "+1", "reporting@head", "4f2c", START_AT)
TOKEN = new_token()
PAGINATION_FIELDS = set(
    json.loads(SPEC.read_text())["components"]["schemas"]["PaginationMetadata"]["properties"]
)


# What every answer is held to; not_a_server_error is no_server_error below.
CHECKS = [
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",  # the same request without the token must get a 401
]


def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No 5xx, but the 503 that the broken database deserves."""
    if response.status_code == 503 and (case.path_parameters or {}).get("db") == BROKEN:
        return None
    return not_a_server_error(ctx, response, case)


def pagination_header(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """X-Pagination is JSON text (documented as `content`, which the header check skips)."""
    values = response.headers.get("x-pagination")
    if not values:
        return None
    metadata = json.loads(values[0])
    assert isinstance(metadata, dict), metadata
    assert set(metadata) <= PAGINATION_FIELDS, metadata
    assert all(type(value) is int and value >= 0 for value in metadata.values()), metadata
    return True


def _aim_at_real_resources(context: Any, parameters: dict[str, Any] | None) -> Any:
    """Half the cases name the managed database, a real revision or the queued operation;
    the others keep what the spec's patterns give (mostly 404s)."""
    if not parameters:
        return st.just(parameters)

    def aim(db: str, rev: str) -> dict[str, Any]:
        aimed = dict(parameters)
        if "db" in aimed:
            aimed["db"] = db
        if "rev" in aimed:
            aimed["rev"] = rev
        if "operation_id" in aimed:
            aimed["operation_id"] = 1
        return aimed

    databases = st.sampled_from((DATABASE, DATABASE, BROKEN))
    aimed = st.builds(aim, databases, st.sampled_from(REVISION_SPECS))
    return st.one_of(aimed, st.just(parameters))


def _aim_bodies_at_real_revisions(context: Any, body: Any) -> Any:
    """Half the operation requests name a real revision and no precondition, so that some
    are queued (202) rather than all refused."""
    if not isinstance(body, dict) or "revision" not in body:
        return st.just(body)

    def aim(rev: str) -> dict[str, Any]:
        return {k: v for k, v in {**body, "revision": rev}.items() if k != "expected_current"}

    return st.one_of(st.sampled_from(REVISION_SPECS).map(aim), st.just(body))


def _short_long_polls(context: Any, query: dict[str, Any] | None) -> dict[str, Any] | None:
    """`wait` and `timeout` long-poll up to 60 s: keep every case fast."""
    for key in ("wait", "timeout"):
        value = (query or {}).get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0.01:
            query = {**(query or {}), key: 0.01}
    return query


class _AppUnderTest:
    """The WSGI app the schema sends to: the spec is loaded at import, the app by a fixture."""

    app: Flask | None = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        assert self.app is not None, "the fuzzed_app fixture builds the app"
        return self.app(environ, start_response)


APP = _AppUnderTest()
# The committed spec: test_api_contract keeps it equal to what the app serves.
schema = schemathesis.openapi.from_path(SPEC)
schema.app = APP
schema.config.checks.update(included_check_names=CHECKS)
schema.hook("flatmap_path_parameters")(_aim_at_real_resources)
schema.hook("flatmap_body")(_aim_bodies_at_real_revisions)
schema.hook("map_query")(_short_long_polls)


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The app over the example project on SQLite, with one queued operation (id 1), and
    the same project on a database that cannot be read."""
    root = tmp_path_factory.mktemp("fuzz")
    project = root / "example"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.db"))
    ini = project / "alembic.ini"
    url = f"sqlite:///{root / 'example.db'}"
    alembic(ini, url, "upgrade", START_AT)
    tokens = root / "tokens.toml"
    tokens.write_text(token_entry("fuzzer", Role.ADMIN, [], TOKEN))
    (root / "broken.db").write_text("not a database\n" * 100)
    broken = f"sqlite:///{root / 'broken.db'}"
    databases = (managed(DATABASE, ini, url), managed(BROKEN, ini, broken))
    # Event streams end after a moment, and each case closes its stream before the next.
    app = create_app(settings_for(*databases, tokens_file=tokens, stream_seconds=0.2))
    queued = app.test_client().post(
        f"/api/v1/databases/{DATABASE}/operations",
        json={"action": "upgrade", "revision": "heads"},
        headers=_auth(),
    )
    assert queued.status_code == 202, queued.json
    APP.app = app
    yield app
    APP.app = None


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@schema.parametrize()
@hypothesis.settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_answer_matches_the_spec(case: Case, fuzzed_app: Flask) -> None:
    case.call_and_validate(headers=_auth(), additional_checks=[no_server_error, pagination_header])
