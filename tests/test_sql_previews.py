"""SQL previews: byte for byte the alembic CLI's --sql output, per revision, safely."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.api.app import create_app
from tests.helpers import alembic, client_for, managed, settings_for, stamp, table_names

DIALECT_URLS = {"postgresql": "postgresql://", "sqlite": "sqlite://"}

# (project, CLI arguments, API query): the same range asked of both.
CASES = [
    ("linear", ["upgrade", "heads"], {"from": "base"}),
    ("linear", ["upgrade", "a2000002:a4000004"], {"from": "a2000002", "to": "a4000004"}),
    ("linear", ["upgrade", "a1000001:+2"], {"from": "a1000001", "to": "+2"}),
    ("linear", ["downgrade", "a4000004:base"], {"action": "downgrade", "from": "a4", "to": "base"}),
    ("linear", ["downgrade", "a3000003:-1"], {"action": "downgrade", "from": "a3", "to": "-1"}),
    ("linear", ["stamp", "a1000001:a3000003"], {"action": "stamp", "from": "a1", "to": "a3"}),
    ("branched", ["upgrade", "heads"], {"from": "base"}),
    ("branched", ["upgrade", "bx100001:heads"], {"from": "bx100001"}),
    (
        "branched",
        ["downgrade", "b4000004:base"],
        {"action": "downgrade", "from": "b4", "to": "base"},
    ),
    (
        "branched",
        ["downgrade", "bm300003:by200002"],
        {"action": "downgrade", "from": "bm300003", "to": "by200002"},
    ),
    ("two_heads", ["upgrade", "heads"], {"from": "base"}),
    ("two_heads", ["upgrade", "billing@head"], {"from": "base", "to": "billing@head"}),
    ("two_heads", ["upgrade", "tb100001:search@head"], {"from": "tb100001", "to": "search@head"}),
    ("depends_on", ["upgrade", "heads"], {"from": "base"}),
    ("depends_on", ["upgrade", "m0000000:o1000000"], {"from": "m0000000", "to": "o1000000"}),
    ("example", ["upgrade", "heads"], {"from": "base"}),
    (
        "example",
        ["downgrade", "5a3e9f7b0c64:base"],
        {"action": "downgrade", "from": "5a3e9f7b0c64", "to": "base"},
    ),
]


def preview_at_seed_zero(ini: Path, url: str, query: dict[str, str]) -> Any:
    """The API's answer: rendered by the project's runner, which always runs at hash seed 0
    (whatever this test process's seed is), as `PYTHONHASHSEED=0 alembic ... --sql` does."""
    response = client_for(managed("db", ini, url)).get(
        "/api/v1/databases/db/sql", query_string=query
    )
    return {"status": response.status_code, "body": response.json}


def sql_preview(client: FlaskClient, **query: str) -> Any:
    response = client.get("/api/v1/databases/db/sql", query_string=query)
    return response


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize(("name", "cli", "query"), CASES)
def test_a_preview_is_byte_for_byte_what_the_cli_prints_and_its_segments_join_to_it(
    project: Callable[[str], Path],
    tmp_path: Path,
    name: str,
    cli: list[str],
    query: dict[str, str],
    dialect: str,
) -> None:
    ini = project(name)
    answer = preview_at_seed_zero(
        ini, f"sqlite:///{tmp_path / 'unused.db'}", {**query, "dialect": dialect}
    )
    assert answer["status"] == 200, answer
    body = answer["body"]
    expected = alembic(ini, DIALECT_URLS[dialect], *cli, "--sql")
    assert body["sql"] == expected
    assert "".join(segment["sql"] for segment in body["revisions"]) == expected
    assert body["sha256"] == hashlib.sha256(expected.encode()).hexdigest()
    ran = [line.split("-> ")[-1] for line in expected.splitlines() if line.startswith("-- Running")]
    assert len(body["revisions"]) == len(ran)
    assert body["statement_count"] == sum(s["statement_count"] for s in body["revisions"]) > 0


def test_a_multi_head_start_renders_as_alembic_does_from_both_heads(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    client = client_for(managed("db", project("two_heads"), f"sqlite:///{tmp_path / 'x.db'}"))
    body = sql_preview(client, **{"from": "tb100001,ts100001"}).json
    assert [s["revision"] for s in body["revisions"]] == ["ts200002", "tb200002"]
    assert body["from"] == ["tb100001", "ts100001"]


def test_from_current_reads_the_database_and_is_empty_when_up_to_date(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("linear")
    client = client_for(managed("db", ini, database_url))
    body = sql_preview(client).json
    assert body["from"] == [] and len(body["revisions"]) == 4
    alembic(ini, database_url, "upgrade", "a3000003")
    body = sql_preview(client).json
    assert body["from"] == ["a3000003"] and [s["revision"] for s in body["revisions"]] == [
        "a4000004"
    ]
    alembic(ini, database_url, "upgrade", "heads")
    body = sql_preview(client).json
    assert (body["revisions"], body["sql"], body["statement_count"]) == ([], "", 0)


def test_a_preview_never_changes_the_managed_database(
    project: Callable[[str], Path], database_url: str
) -> None:
    client = client_for(managed("db", project("example"), database_url))
    for dialect in ("postgresql", "sqlite", "mysql"):
        assert sql_preview(client, dialect=dialect).status_code == 200
    assert table_names(database_url) == []


UNSUPPORTED = {
    "a5000005": "    op.get_bind().execute(sa.text('SELECT count(*) FROM t')).scalar()",
    "a6000006": "    sa.inspect(op.get_bind()).get_table_names()",
    "a7000007": "    with op.batch_alter_table('t') as batch:\n        batch.drop_column('x')",
}


def add_revisions_needing_a_database(ini: Path) -> None:
    versions = ini.parent / "migrations" / "versions"
    down = "a4000004"
    for revision, body in UNSUPPORTED.items():
        (versions / f"{revision}_live.py").write_text(
            f'"""needs a live database\n"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
            f'revision = "{revision}"\ndown_revision = "{down}"\n'
            "branch_labels = None\ndepends_on = None\n\n\n"
            f"def upgrade():\n{body}\n\n\ndef downgrade():\n    pass\n"
        )
        down = revision


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [("postgresql", ["a5000005", "a6000006"]), ("sqlite", ["a5000005", "a6000006", "a7000007"])],
)
def test_every_revision_that_needs_a_live_database_is_listed_with_its_reason(
    project: Callable[[str], Path], tmp_path: Path, dialect: str, expected: list[str]
) -> None:
    ini = project("linear")
    add_revisions_needing_a_database(ini)
    client = client_for(managed("db", ini, f"sqlite:///{tmp_path / 'x.db'}"))
    response = sql_preview(client, dialect=dialect, **{"from": "base"})
    assert response.status_code == 422 and response.json["code"] == "offline-unsupported"
    unsupported = response.json["unsupported"]
    assert [item["revision"] for item in unsupported] == expected
    assert all(item["reason"] for item in unsupported)
    assert (
        sql_preview(client, dialect=dialect, to="a4000004", **{"from": "base"}).status_code == 200
    )


@pytest.mark.parametrize(
    ("name", "query", "status", "code"),
    [
        (
            "linear",
            {"action": "downgrade", "from": "a2000002", "to": "a4000004"},
            422,
            "revision-unresolvable",
        ),
        (
            "linear",
            {"action": "downgrade", "from": "a2000002", "to": "-3"},
            422,
            "invalid-relative-step",
        ),
        (
            "two_heads",
            {"action": "downgrade", "from": "tb200002,ts200002", "to": "-1"},
            409,
            "multiple-heads",
        ),
        ("two_heads", {"from": "base", "to": "head"}, 409, "multiple-heads"),
        ("two_heads", {"from": "tb100001,ts100001", "to": "+1"}, 422, "invalid-relative-step"),
        ("two_heads", {"from": "base", "to": "billing@ts100001"}, 422, "revision-unresolvable"),
        ("linear", {"from": "zzzz9999"}, 404, "revision-not-found"),
        ("linear", {"action": "downgrade"}, 422, "validation-failed"),
        ("linear", {"action": "stamp"}, 422, "validation-failed"),
        ("linear", {"action": "explode"}, 422, "validation-failed"),
        ("linear", {"dialect": "db2"}, 422, "validation-failed"),
        ("linear", {"from": "a1;drop"}, 422, "validation-failed"),
    ],
)
def test_bad_ranges_are_problems_a_pipeline_can_tell_apart(
    project: Callable[[str], Path],
    tmp_path: Path,
    name: str,
    query: dict[str, str],
    status: int,
    code: str,
) -> None:
    client = client_for(managed("db", project(name), f"sqlite:///{tmp_path / 'x.db'}"))
    response = sql_preview(client, **query)
    assert (response.status_code, response.json["code"]) == (status, code), response.json
    assert response.content_type == "application/problem+json"


def test_multiple_heads_problems_name_the_heads_involved(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    client = client_for(managed("db", project("two_heads"), f"sqlite:///{tmp_path / 'x.db'}"))
    query = {"action": "downgrade", "from": "tb200002,ts200002", "to": "-1"}
    assert sql_preview(client, **query).json["heads"] == ["tb200002", "ts200002"]


def test_downgrading_one_branch_to_a_shared_base_shows_every_revision_it_removes(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    client = client_for(managed("db", project("two_heads"), f"sqlite:///{tmp_path / 'x.db'}"))
    query = {"action": "downgrade", "from": "tb200002,ts200002", "to": "billing@base"}
    body = sql_preview(client, **query).json
    removed = {segment["revision"] for segment in body["revisions"]}
    assert {"tb200002", "tb100001"} <= removed
    assert body["to_revisions"] == ["t0000000"] or "t0000000" in removed


def test_a_database_at_an_unknown_revision_cannot_be_previewed_from_current(
    project: Callable[[str], Path], database_url: str
) -> None:
    stamp(database_url, "deadbeef0000")
    client = client_for(managed("db", project("linear"), database_url))
    response = sql_preview(client)
    assert response.status_code == 409 and response.json["code"] == "unknown-database-revision"


def test_text_plain_gives_the_script_alone_with_an_etag_that_follows_the_text(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    ini = project("linear")
    client = client_for(managed("db", ini, f"sqlite:///{tmp_path / 'x.db'}"))
    plain = client.get("/api/v1/databases/db/sql?from=base", headers={"Accept": "text/plain"})
    assert plain.content_type.startswith("text/plain")
    assert plain.get_data(as_text=True) == sql_preview(client, **{"from": "base"}).json["sql"]
    etag = plain.headers["ETag"]
    again = client.get(
        "/api/v1/databases/db/sql?from=base",
        headers={"Accept": "text/plain", "If-None-Match": etag},
    )
    assert again.status_code == 304
    json_etag = sql_preview(client, **{"from": "base"}).headers["ETag"]
    assert json_etag != etag
    add_revisions_needing_a_database(ini)
    (ini.parent / "migrations" / "versions" / "a5000005_live.py").unlink()
    (ini.parent / "migrations" / "versions" / "a6000006_live.py").unlink()
    (ini.parent / "migrations" / "versions" / "a7000007_live.py").unlink()
    changed = client.get("/api/v1/databases/db/sql?from=base&to=a4000004")
    assert changed.status_code == 200


def test_a_changed_version_file_changes_the_cached_preview(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    ini = project("linear")
    client = client_for(managed("db", ini, f"sqlite:///{tmp_path / 'x.db'}"))
    before = sql_preview(client, **{"from": "base"}).json["sha256"]
    assert sql_preview(client, **{"from": "base"}).json["sha256"] == before
    (revision_file,) = (ini.parent / "migrations" / "versions").glob("a4000004*.py")
    revision_file.write_text(revision_file.read_text() + "\n# an edit\n")
    (ini.parent / "migrations" / "versions" / "a5000005_more.py").write_text(
        '"""more\n"""\nfrom alembic import op\n\nrevision = "a5000005"\n'
        'down_revision = "a4000004"\nbranch_labels = None\ndepends_on = None\n\n\n'
        'def upgrade():\n    op.execute("SELECT 5")\n\n\ndef downgrade():\n    pass\n'
    )
    after = sql_preview(client, **{"from": "base"}).json
    assert after["sha256"] != before and after["revisions"][-1]["revision"] == "a5000005"


def test_env_py_prints_and_logging_never_reach_the_sql(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    ini = project("example")
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + '\nprint("ENV-PY-WAS-HERE")\n')
    client = client_for(managed("db", ini, f"sqlite:///{tmp_path / 'x.db'}"))
    assert "ENV-PY-WAS-HERE" not in sql_preview(client, **{"from": "base"}).json["sql"]


def test_many_previews_at_once_each_get_their_own_correct_text(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    databases = [
        managed(name, project(name), f"sqlite:///{tmp_path / (name + '.db')}")
        for name in ("linear", "branched", "example")
    ]
    app = create_app(settings_for(*databases, preview_cache_mb=0))
    ranges = [
        (d.name, {"from": "base", "dialect": dialect, **extra})
        for d in databases
        for dialect in ("postgresql", "sqlite")
        for extra in ({}, {"action": "stamp", "to": "heads"})
    ]
    serial = [
        app.test_client().get(f"/api/v1/databases/{n}/sql", query_string=q).json for n, q in ranges
    ]
    wrong: list[str] = []

    def render_all(offset: int) -> None:
        client = app.test_client()
        for i in range(len(ranges) * 2):
            name, query = ranges[(i + offset) % len(ranges)]
            body = client.get(f"/api/v1/databases/{name}/sql", query_string=query).json
            if body != serial[(i + offset) % len(ranges)]:
                wrong.append(f"{name} {query}")

    threads = [threading.Thread(target=render_all, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_a_preview_that_renders_differently_each_time_says_so_and_names_the_revision(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    ini = project("linear")
    revision = next((ini.parent / "migrations" / "versions").glob("a3*.py"))
    # Like a revision iterating a set of Index objects (hashed by identity): each render of
    # it may order its statements differently. Here it differs every time, for the test.
    revision.write_text(
        revision.read_text().replace(
            "def upgrade() -> None:\n",
            "def upgrade() -> None:\n    op.execute(f'SELECT {next(_RENDERS)}')\n",
        )
        + "\nimport itertools\n_RENDERS = itertools.count()\n"
    )
    client = client_for(managed("db", ini, f"sqlite:///{tmp_path / 'unused.db'}"))
    body = sql_preview(client, **{"from": "base", "dialect": "postgresql"}).json
    assert body["deterministic"] is False
    assert body["unstable_revisions"] == ["a3000003"]
    text = client.get(
        "/api/v1/databases/db/sql",
        query_string={"from": "base", "dialect": "postgresql"},
        headers={"Accept": "text/plain"},
    )
    assert text.headers["Preview-Deterministic"] == "false"
    assert text.headers["Preview-Unstable-Revisions"] == "a3000003"


def test_a_stable_preview_is_deterministic(project: Callable[[str], Path], tmp_path: Path) -> None:
    client = client_for(managed("db", project("branched"), f"sqlite:///{tmp_path / 'x.db'}"))
    response = sql_preview(client, **{"from": "base", "dialect": "postgresql"})
    assert response.json["deterministic"] is True and response.json["unstable_revisions"] == []
    assert response.headers["Preview-Deterministic"] == "true"
