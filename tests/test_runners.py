"""Project runners: other interpreters, broken environments, hangs and crashes, isolation."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from service.api.app import create_app
from service.settings import ManagedDatabase
from tests.helpers import managed, settings_for


def client_with(*databases: ManagedDatabase, timeout: float = 30) -> FlaskClient:
    app = create_app(settings_for(*databases, runner_timeout_seconds=timeout))
    app.config["TESTING"] = True
    return app.test_client()


def runner_of(client: FlaskClient, name: str) -> int:
    runner = client.application.extensions["migctl"].registry.get(name).scripts.runner
    assert runner.info is not None
    return runner.info.pid


def with_python(database: ManagedDatabase, *python: str) -> ManagedDatabase:
    return dataclasses.replace(database, python=tuple(python))


def status(client: FlaskClient, name: str = "db") -> tuple[int, dict[str, object]]:
    response = client.get(f"/api/v1/databases/{name}/status")
    return response.status_code, response.json or {}


@pytest.fixture
def linear(project: Callable[[str], Path], database_url: str) -> ManagedDatabase:
    return managed("db", project("linear"), database_url)


def test_a_missing_interpreter_is_a_problem_naming_it_and_the_cause(
    linear: ManagedDatabase,
) -> None:
    client = client_with(with_python(linear, "/opt/nowhere/bin/python"))
    code, body = status(client)
    assert code == 503 and body["code"] == "project-unavailable"
    assert "/opt/nowhere/bin/python" in str(body["detail"])
    assert "No such file" in str(body["detail"])


def test_an_interpreter_without_alembic_is_a_problem_that_says_what_to_install(
    linear: ManagedDatabase, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    client = client_with(with_python(linear, str(bare / "bin" / "python")))
    code, body = status(client)
    assert code == 503 and body["code"] == "project-unavailable"
    assert str(bare / "bin" / "python") in str(body["detail"])
    assert "install alembic and SQLAlchemy" in str(body["detail"])


def test_an_alembic_older_than_the_floor_is_refused_with_its_version(
    linear: ManagedDatabase, tmp_path: Path
) -> None:
    old = tmp_path / "old" / "alembic"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text('__version__ = "1.9.4"\n')
    prefix = ("/usr/bin/env", f"PYTHONPATH={old.parent}", sys.executable)
    client = client_with(with_python(linear, *prefix))
    code, body = status(client)
    assert code == 503 and "alembic 1.9.4 is older than 1.10" in str(body["detail"])


def test_a_runner_that_speaks_garbage_is_a_problem_not_a_crash(
    linear: ManagedDatabase, tmp_path: Path
) -> None:
    liar = tmp_path / "liar.py"  # run as `python liar.py -c <bootstrap> <dir> <fd> ...`
    liar.write_text(
        "import os, sys, time\nos.write(int(sys.argv[4]), b'not json\\n')\ntime.sleep(5)\n"
    )
    client = client_with(with_python(linear, sys.executable, str(liar)))
    code, body = status(client)
    assert code == 503 and "spoke garbage" in str(body["detail"])


def test_a_killed_runner_is_restarted_by_the_next_request(linear: ManagedDatabase) -> None:
    client = client_with(linear)
    assert status(client)[0] == 200
    first = runner_of(client, "db")
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)
    client.get("/api/v1/databases/db/sql?dialect=postgresql")  # needs the runner again
    code, _body = status(client)
    assert code == 200
    assert runner_of(client, "db") != first


def hanging_env_py(ini: Path) -> None:
    """Make env.py hang when it runs online (reads and jobs), not when it renders offline."""
    env_py = ini.parent / "migrations" / "env.py"
    online = "def run_migrations_online() -> None:\n"
    hang = "    import time\n\n    time.sleep(3600)\n"
    env_py.write_text(env_py.read_text().replace(online, online + hang, 1))


def test_a_hanging_env_py_answers_503_within_the_timeout_and_the_api_keeps_serving(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("linear")
    hanging_env_py(ini)
    client = client_with(managed("db", ini, database_url), timeout=2)
    started = time.monotonic()
    code, body = status(client)
    assert code == 503 and body["code"] == "project-unavailable"
    assert "did not answer within 2 s" in str(body["detail"])
    assert time.monotonic() - started < 10
    assert client.get("/health/live").status_code == 200
    started = time.monotonic()
    assert status(client)[0] == 503  # a fresh runner, bounded again
    assert time.monotonic() - started < 10


def test_a_hanging_revision_import_answers_503_within_the_timeout(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("linear")
    revision = next((ini.parent / "migrations" / "versions").glob("a3*.py"))
    revision.write_text("import time\ntime.sleep(3600)\n" + revision.read_text())
    client = client_with(managed("db", ini, database_url), timeout=2)
    started = time.monotonic()
    code, body = status(client)
    assert code == 503 and "did not answer within 2 s" in str(body["detail"])
    assert time.monotonic() - started < 10


def test_an_env_py_that_kills_its_process_is_reported_and_the_runner_comes_back(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("linear")
    env_py = ini.parent / "migrations" / "env.py"
    original = env_py.read_text()
    env_py.write_text("import os\nos._exit(7)\n" + original)
    client = client_with(managed("db", ini, database_url))
    code, body = status(client)
    assert code == 503 and "exited with code 7" in str(body["detail"])
    env_py.write_text(original)
    assert status(client)[0] == 200


def test_the_api_process_never_imports_the_projects_code(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("linear")
    (ini.parent / "migctl_marker_module.py").write_text("MARK = 1\n")
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text("import migctl_marker_module  # noqa: F401\n" + env_py.read_text())
    client = client_with(managed("db", ini, database_url))
    assert status(client)[0] == 200
    assert client.get("/api/v1/databases/db/sql?dialect=postgresql").status_code == 200
    assert "migctl_marker_module" not in sys.modules


def test_an_argv_prefix_runs_the_project_with_its_environment(
    project: Callable[[str], Path], database_url: str, tmp_path: Path
) -> None:
    ini = project("linear")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "billing_settings.py").write_text("SCHEMA_NOTE = 'from PYTHONPATH'\n")
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text("import billing_settings  # noqa: F401\n" + env_py.read_text())
    database = with_python(
        managed("db", ini, database_url), "/usr/bin/env", f"PYTHONPATH={extra}", sys.executable
    )
    client = client_with(database)
    assert status(client)[0] == 200


def test_databases_sharing_a_project_and_interpreter_share_one_runner(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    ini = project("linear")
    client = client_with(managed("one", ini, make_database()), managed("two", ini, make_database()))
    assert status(client, "one")[0] == 200 and status(client, "two")[0] == 200
    assert runner_of(client, "one") == runner_of(client, "two")


def test_the_runner_does_not_see_migctls_own_settings_or_other_databases_urls(
    project: Callable[[str], Path],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ini = project("linear")
    seen = tmp_path / "seen.txt"
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text(
        textwrap.dedent(
            f"""\
            import os
            with open({str(seen)!r}, "w") as out:
                names = [k for k in os.environ if "SECRET" in k or k.startswith("MIGCTL_")]
                out.write(",".join(sorted(names)))
            """
        )
        + env_py.read_text()
    )
    databases = tmp_path / "databases.toml"
    databases.write_text(
        f'[databases.db]\nurl = "{database_url}"\nalembic_config = "{ini}"\n'
        f'[databases.other]\nurl_env = "OTHER_SECRET_URL"\nalembic_config = "{ini}"\n'
    )
    from service.settings import Settings

    environ = {
        "MIGCTL_DATABASES_FILE": str(databases),
        "MIGCTL_DATA_DIR": str(tmp_path),
        "OTHER_SECRET_URL": database_url,
        "PATH": os.environ["PATH"],
    }
    app = create_app(Settings.from_env(environ))
    app.config["TESTING"] = True
    assert app.test_client().get("/api/v1/databases/db/status").status_code == 200
    assert seen.read_text() == ""


def test_check_config_prints_each_projects_interpreter_and_versions(
    project: Callable[[str], Path], database_url: str, tmp_path: Path
) -> None:
    ini = project("linear")
    databases = tmp_path / "databases.toml"
    databases.write_text(
        f'[databases.db]\nurl = "{database_url}"\nalembic_config = "{ini}"\n'
        f'[databases.gone]\nurl = "{database_url}"\nalembic_config = "{ini}"\n'
        'python = "/opt/nowhere/python"\n'
    )
    import alembic
    import sqlalchemy

    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("migctl")), "check-config"],
        env={**environ, "MIGCTL_DATABASES_FILE": str(databases), "MIGCTL_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    python = ".".join(map(str, sys.version_info[:3]))
    assert (
        f"runs in {sys.executable}: Python {python}, alembic {alembic.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__}"
    ) in result.stdout
    assert "gone: " in result.stdout and "/opt/nowhere/python" in result.stdout
