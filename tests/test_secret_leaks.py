"""Secrets leak nowhere: not whole, not percent-encoded, not as the fragment a driver quotes.

Each test builds an Alembic project whose revision puts a secret where a user would see it
(a failing statement, a value written into SQL), runs it as migctl runs it, and searches
everything migctl then answers, records and logs for any form or 8+ character piece of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from service.services.access import Role
from service.services.redaction import log_redaction
from service.services.tokens import new_token, token_entry
from service.settings import ManagedDatabase
from tests.helpers import PostgresServer, client_for, free_port, managed, wait_for
from tests.leaks import leaks
from tests.test_operations import run_next

MIGCTL = str(Path(sys.executable).with_name("migctl"))

ALEMBIC_INI = """[alembic]
script_location = %(here)s/migrations
path_separator = os
sqlalchemy.url = sqlite:///placeholder.db
"""

# The Alembic cookbook's env.py: migctl's connection when handed one, else its own engine.
ENV_PY = """
from alembic import context
from sqlalchemy import create_engine, pool

config = context.config


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
        connection = engine.connect()
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

REVISION = '''"""leak probe

Revision ID: l1000001
Revises:
Create Date: 2026-01-01 00:00:00
"""
import logging
import os

from alembic import op
from sqlalchemy.engine import make_url

revision = "l1000001"
down_revision = None
branch_labels = None
depends_on = None
log = logging.getLogger("alembic.runtime.migration")


def upgrade():
{body}


def downgrade():
    op.execute("DROP TABLE leak_note")
'''

SETUP = '    op.execute("CREATE TABLE leak_note (note VARCHAR(400))")\n'


def leaky_project(root: Path, body: str) -> Path:
    """An Alembic project of one revision whose upgrade runs `body`; its alembic.ini."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    (versions / "l1000001_leak.py").write_text(REVISION.format(body=SETUP + body))
    return root / "alembic.ini"


def a_secret(prefix: str = "") -> str:
    """20 characters no other text of a test contains."""
    return (prefix + secrets.token_hex(10))[:20]


@dataclass
class Target:
    """A managed database's URL and the secrets it carries."""

    url: str
    secrets: list[str] = field(default_factory=list)


class PasswordRoles:
    """Roles with a password on the test server, each owning a throwaway database."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.made: list[tuple[str, str]] = []

    def database_for(self, password: str, configured: str | None = None) -> str:
        """A URL that logs in with `password`, written as `configured` (percent-encoded)."""
        role = f"migctl_t_{uuid.uuid4().hex[:10]}"
        url = sa.make_url(self.server.create_database())
        literal = password.replace("'", "''")
        with self.server.engine.connect() as connection:
            connection.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD '{literal}'"))
            connection.execute(sa.text(f'ALTER DATABASE "{url.database}" OWNER TO {role}'))
        self.made.append((role, str(url.database)))
        secret = configured or quote(password, safe="")
        return f"postgresql+psycopg2://{role}:{secret}@{url.host}:{url.port}/{url.database}"

    def drop_all(self) -> None:
        with self.server.engine.connect() as connection:
            for role, database in self.made:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                connection.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))


@pytest.fixture
def roles(request: pytest.FixtureRequest) -> Iterator[PasswordRoles]:
    made = PasswordRoles(request.getfixturevalue("postgres_server"))
    yield made
    made.drop_all()


@pytest.fixture
def target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    """A database of the test's backend; on PostgreSQL its URL carries a password."""
    if backend == "sqlite":  # a SQLite URL has no password: its [env] secret stands for one
        return Target(f"sqlite:///{tmp_path / 'leak.db'}")
    password = a_secret("pw-")
    roles: PasswordRoles = request.getfixturevalue("roles")
    return Target(roles.database_for(password), [password])


def everything(client: FlaskClient, operation_id: int | None = None) -> str:
    """All that the API answers about the database, its operations and the audit log."""
    paths = [
        "/api/v1/databases/db",
        "/api/v1/databases/db/status",
        "/api/v1/operations",
        "/api/v1/audit-events",
    ]
    if operation_id is not None:
        paths.append(f"/api/v1/operations/{operation_id}")
    return "\n".join(client.get(path).get_data(as_text=True) for path in paths)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record, through the redaction migctl installs on its processes' handlers."""
    with caplog.at_level(logging.DEBUG):
        yield caplog


UPGRADE = {"action": "upgrade", "revision": "heads"}


def run_upgrade(database: ManagedDatabase, caplog: pytest.LogCaptureFixture) -> tuple[Any, str]:
    """Queue an upgrade through the API, run it as the worker's job does; (answer, all seen)."""
    client = client_for(database)
    log_redaction(client.application.extensions["migctl"].settings, [caplog.handler])
    queued = client.post("/api/v1/databases/db/operations", json=UPGRADE)
    assert queued.status_code == 202, queued.json
    run_next(client)
    answer = client.get(f"/api/v1/operations/{queued.json['id']}").json
    return answer, everything(client, answer["id"]) + caplog.text


# (1) A failing statement that quotes the URL: the driver's context keeps a piece of it.
QUOTES_URL = {
    # PostgreSQL cuts the name at 63 bytes and its LINE 1 context after the password's start.
    "relation": "    op.execute(f'SELECT * FROM \"{url}/{key}\"')\n",
    # Its LINE 1 context of a syntax error keeps the statement's end: the password's end.
    "syntax": "    op.execute(f\"SELECT '{key}', '{url}' FRM x\")\n",
}
LOGS_URL = '    log.warning("migrating %s with %s", url, key[:12])\n'
READS = "    url, key = os.environ['DATABASE_URL'], os.environ['API_KEY']\n"


@pytest.mark.parametrize("statement", list(QUOTES_URL))
def test_a_failing_statement_that_quotes_the_url_shows_no_piece_of_a_secret_anywhere(
    target: Target, tmp_path: Path, logs: pytest.LogCaptureFixture, statement: str
) -> None:
    ini = leaky_project(tmp_path / "project", READS + LOGS_URL + QUOTES_URL[statement])
    api_key = a_secret("key-")
    answer, seen = run_upgrade(managed("db", ini, target.url, env={"API_KEY": api_key}), logs)
    assert answer["status"] == "failed" and answer["error"]["code"] == "migration-failed"
    assert "***" in answer["error"]["sql"]  # the statement is there, its secrets are not
    assert leaks(seen, api_key, *target.secrets) == []


# (2) A password configured percent-encoded, quoted by an error decoded and re-encoded.
QUOTES_PASSWORD = """    url = os.environ["DATABASE_URL"]
    parsed = make_url(url)
    log.warning("as given %s, decoded %s", url, parsed.password)
    rendered = parsed.render_as_string(hide_password=False)
    op.execute(f'SELECT * FROM "{parsed.password}" WHERE a = \\'{rendered}\\' OR b = \\'{url}\\'')
"""


@pytest.mark.postgresql
def test_a_percent_encoded_password_is_redacted_decoded_as_given_and_re_encoded(
    roles: PasswordRoles, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    password = "Sp@c!al/pw" + a_secret()[:10]
    configured = quote(password, safe="!")  # Sp%40c!al%2Fpw...: not what SQLAlchemy writes
    url = roles.database_for(password, configured)
    ini = leaky_project(tmp_path / "project", QUOTES_PASSWORD)
    answer, seen = run_upgrade(managed("db", ini, url), logs)
    assert answer["status"] == "failed" and "does not exist" in answer["error"]["message"]
    assert leaks(seen, configured, password) == []


ENV_PY_QUOTES_URL = (
    'import os\nraise RuntimeError("cannot use " + os.environ["DATABASE_URL"][:60])\n'
)


@pytest.mark.postgresql
def test_an_env_py_that_fails_quoting_the_url_shows_no_piece_of_the_password(
    roles: PasswordRoles, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    password = "Sp@c!al/pw" + a_secret()[:10]
    configured = quote(password, safe="!")
    ini = leaky_project(tmp_path / "project", "    pass\n")
    (ini.parent / "migrations" / "env.py").write_text(ENV_PY_QUOTES_URL)
    client = client_for(managed("db", ini, roles.database_for(password, configured)))
    log_redaction(client.application.extensions["migctl"].settings, [logs.handler])
    detail = client.get("/api/v1/databases/db").json
    assert detail["status_problem"]["code"] == "project-unavailable"
    refused = client.post("/api/v1/databases/db/operations", json=UPGRADE)
    assert refused.status_code == 503 and refused.json["code"] == "project-unavailable"
    preview = client.get("/api/v1/databases/db/sql?from=base").get_data(as_text=True)
    seen = everything(client) + preview + refused.get_data(as_text=True) + logs.text
    assert leaks(seen, configured, password) == []


# (3) [env] values a revision writes into SQL: in step SQL and in previews.
WRITES_ENV = """    for name in ("NOTE_KEY", "SHORT_PIN", "PUBLIC_NOTE"):
        op.execute(f"INSERT INTO leak_note (note) VALUES ('{os.environ[name]}')")
    key = os.environ["NOTE_KEY"]
    op.execute(f"INSERT INTO leak_note (note) VALUES ('{key[:11]}...{key[-9:]}')")
"""


def test_env_values_written_into_sql_are_redacted_in_steps_and_previews_unless_public(
    target: Target, tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    ini = leaky_project(tmp_path / "project", WRITES_ENV)
    note_key, pin = a_secret("note-"), "k7Qz9"
    env = {"NOTE_KEY": note_key, "SHORT_PIN": pin, "PUBLIC_NOTE": "shown-to-everyone"}
    database = replace(
        managed("db", ini, target.url, env=env), public_env=frozenset({"PUBLIC_NOTE"})
    )
    client = client_for(database)
    json_preview = client.get("/api/v1/databases/db/sql?from=base").json
    text_preview = client.get(
        "/api/v1/databases/db/sql?from=base", headers={"Accept": "text/plain"}
    )
    answer, seen = run_upgrade(database, logs)
    assert answer["status"] == "succeeded"
    (step,) = answer["steps"]
    for sql in (step["sql"], json_preview["sql"], text_preview.get_data(as_text=True)):
        assert "('shown-to-everyone')" in sql and "('***')" in sql
        assert leaks(sql, note_key, pin, *target.secrets) == []
    served = text_preview.get_data(as_text=True)
    assert json_preview["sql"] == served == "".join(s["sql"] for s in json_preview["revisions"])
    assert json_preview["sha256"] == hashlib.sha256(served.encode()).hexdigest()
    assert text_preview.headers["ETag"] == f'"{json_preview["sha256"]}"'
    seen += json.dumps(json_preview)
    assert leaks(seen, note_key, pin, *target.secrets) == []


# (5) The API, the worker and the job as processes: their logs, gunicorn's included.
PROCESS_REVISION = READS + LOGS_URL + QUOTES_URL["relation"]


def http(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.postgresql
def test_no_secret_or_token_reaches_the_logs_of_the_api_worker_and_job_processes(
    roles: PasswordRoles, tmp_path: Path
) -> None:
    password = "Sp@c!al/pw" + a_secret()[:10]
    configured, api_key, token = quote(password, safe="!"), a_secret("key-"), new_token()
    ini = leaky_project(tmp_path / "project", PROCESS_REVISION)
    (tmp_path / "tokens.toml").write_text(token_entry("ci", Role.ADMIN, [], token))
    (tmp_path / "databases.toml").write_text(
        f'[databases.db]\nurl = "{roles.database_for(password, configured)}"\n'
        f'alembic_config = "{ini}"\n[databases.db.env]\nAPI_KEY = "{api_key}"\n'
    )
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    environ |= {
        "MIGCTL_DATABASES_FILE": str(tmp_path / "databases.toml"),
        "MIGCTL_TOKENS_FILE": str(tmp_path / "tokens.toml"),
        "MIGCTL_DATA_DIR": str(tmp_path / "var"),
        "MIGCTL_WORKER_POLL_SECONDS": "0.2",
        "MIGCTL_LOG_LEVEL": "DEBUG",
    }
    output = tmp_path / "output.log"
    with output.open("w") as sink:
        server = subprocess.Popen(
            [MIGCTL, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            api = f"http://127.0.0.1:{port}/api/v1"
            wait_for(f"http://127.0.0.1:{port}/health/live")
            # a token pasted into a query: refused (unknown parameter), and logged without it
            refused = http("POST", f"{api}/databases/db/operations?t={token}", token, UPGRADE)
            assert refused[0] == 422 and token not in json.dumps(refused[1])
            status, queued = http("POST", f"{api}/databases/db/operations", token, UPGRADE)
            assert status == 202, queued
            status, done = http("GET", f"{api}/operations/{queued['id']}?wait=30", token)
            assert done["status"] == "failed", done
            assert http("GET", f"{api}/databases/{token[:20]}", token)[0] == 404
            assert http("GET", f"{api}/databases?hint={token[-12:]}", token)[0] == 422
            seen = json.dumps(done)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    time.sleep(0.1)
    text = output.read_text()
    assert "GET /api/v1/operations/" in text and "migrating" in text  # the lines are there
    assert leaks(text + seen, configured, password, api_key, token) == []
