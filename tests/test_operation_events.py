"""Operation events as server-sent event streams, and waiting for a database's revision."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.api.app import create_app
from service.services.access import Role
from service.services.control import upgrade_control_schema
from service.services.tokens import new_token, token_entry
from service.store import events as store_events
from service.store.db import ControlStore, utcnow
from service.worker import supervision
from tests.helpers import alembic, managed, settings_for
from tests.test_operations import post, run_next

LINEAR = ["a1000001", "a2000002", "a3000003", "a4000004"]


def parse(stream: str) -> list[dict[str, Any]]:
    """The events of a text/event-stream body: each as its data, with `id` and `event`."""
    found = []
    for block in stream.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            found.append(
                {
                    **json.loads(fields["data"]),
                    "sse_id": int(fields["id"]),
                    "event": fields["event"],
                }
            )
    return found


def read(client: FlaskClient, url: str, **headers: str) -> list[dict[str, Any]]:
    """A whole stream's events; the response is closed, as a server closes it."""
    with client.get(url, headers=headers) as response:
        assert response.status_code == 200, response.json
        return parse(response.get_data(as_text=True))


def app_for(ini: Path, *urls: str, **overrides: Any) -> Flask:
    databases = [managed(f"db{n}", ini, url) for n, url in enumerate(urls, start=1)]
    return create_app(settings_for(*databases, **overrides))


@pytest.fixture
def client(project: Callable[[str], Path], tmp_path: Path) -> FlaskClient:
    ini = project("linear")
    urls = [f"sqlite:///{tmp_path / name}" for name in ("one.db", "two.db")]
    return app_for(ini, *urls, stream_seconds=1, stream_keepalive_seconds=0.2).test_client()


@pytest.mark.parametrize("batch_seconds", [0, 30], ids=["step-by-step", "batched"])
def test_an_upgrade_streams_its_queueing_each_step_and_its_end_with_counts(
    client: FlaskClient, batch_seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batched: the worker holds the steps until the job's end, then records all four at once.
    monkeypatch.setattr(supervision, "BATCH_SECONDS", batch_seconds)
    queued = post(client, "db1", action="upgrade", revision="heads").json
    assert run_next(client) == "succeeded"
    with client.get(f"/api/v1/operations/{queued['id']}/events") as response:
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        body = response.get_data(as_text=True)
    assert body.startswith("retry: 3000\n\n")
    events = parse(body)
    kinds = [(e["event"], (e["step"] or {}).get("revision")) for e in events]
    steps = [(kind, rev) for rev in LINEAR for kind in ("step.started", "step.finished")]
    assert kinds == [("operation.queued", None), ("operation.running", None)] + [
        (kind, rev) for kind, rev in steps
    ] + [("operation.succeeded", None)]
    assert [e["done"] for e in events] == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert {e["total"] for e in events} == {4}
    assert events[-1]["status"] == "succeeded" and events[-1]["error"] is None
    assert [e["sse_id"] for e in events] == sorted({e["sse_id"] for e in events})


def test_last_event_id_resumes_after_that_event_without_loss_or_duplicates(
    client: FlaskClient,
) -> None:
    queued = post(client, "db1", action="upgrade", revision="heads").json
    run_next(client)
    url = f"/api/v1/operations/{queued['id']}/events"
    whole = read(client, url)
    assert read(client, url, **{"Last-Event-ID": str(whole[4]["sse_id"])}) == whole[5:]
    assert client.get(url, headers={"Last-Event-ID": "x"}).status_code == 422


def test_the_eta_comes_from_the_same_revisions_run_on_another_database(
    client: FlaskClient,
) -> None:
    first = post(client, "db1", action="upgrade", revision="heads").json
    url = f"/api/v1/operations/{first['id']}"
    assert read(client, f"{url}/events")[0]["eta_seconds"] is None  # nothing ran anywhere yet
    run_next(client)
    took = sum(step["duration_ms"] for step in client.get(url).json["steps"])
    second = post(client, "db2", action="upgrade", revision="heads").json
    events = read(client, f"/api/v1/operations/{second['id']}/events")
    assert events[0]["eta_seconds"] == pytest.approx(took / 1000, abs=0.01)


def test_the_events_of_every_operation_can_be_followed_and_filtered_by_database(
    client: FlaskClient,
) -> None:
    post(client, "db1", action="upgrade", revision="heads")
    post(client, "db2", action="upgrade", revision="a1000001")
    assert read(client, "/api/v1/events") == []  # from now on: nothing new within 1 s
    every = read(client, "/api/v1/events", **{"Last-Event-ID": "0"})  # from the first
    assert [e["database"] for e in every] == ["db1", "db2"]
    only = read(client, "/api/v1/events?database=db2", **{"Last-Event-ID": "0"})
    assert [(e["database"], e["revision"]) for e in only] == [("db2", "a1000001")]
    assert client.get("/api/v1/events?database=nope").status_code == 404
    assert client.get("/api/v1/operations/999/events").status_code == 404


def test_an_idle_stream_sends_keep_alive_comments_and_ends_after_its_lifetime(
    client: FlaskClient,
) -> None:
    with client.get("/api/v1/events") as response:  # 1 s, a keep-alive every 0.2 s
        body = response.get_data(as_text=True)
    assert body.count(": keep-alive\n\n") >= 3


def test_a_stream_beyond_the_processs_cap_is_refused_with_503_and_retry_after(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    app = app_for(project("linear"), f"sqlite:///{tmp_path / 'db.sqlite'}", max_streams=0)
    refused = app.test_client().get("/api/v1/events")
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.json["code"] == "too-many-streams"


def test_wait_answers_once_the_database_reaches_the_revision_or_after_the_timeout(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    ini, url = project("linear"), f"sqlite:///{tmp_path / 'db.sqlite'}"
    client = app_for(ini, url).test_client()
    late = client.get("/api/v1/databases/db1/wait?revision=a2000002&timeout=0.5").json
    assert late == {
        "database": "db1",
        "revision": "a2000002",
        "target_revisions": ["a2000002"],
        "current_heads": [],
        "reached": False,
    }
    threading.Timer(1, alembic, args=(ini, url, "upgrade", "a3000003")).start()
    reached = client.get("/api/v1/databases/db1/wait?revision=a2000002&timeout=30").json
    assert reached["reached"] is True and reached["current_heads"] == ["a3000003"]
    unknown = client.get("/api/v1/databases/db1/wait?revision=zzzz&timeout=1")
    assert unknown.status_code == 404 and unknown.json["code"] == "revision-not-found"


def test_a_follower_never_misses_an_event_committed_after_a_larger_id_was_drawn(
    make_database: Callable[[], str],
) -> None:
    """Writers hold their transaction open after appending; a follower reads `after(last)`
    all the while. Ids must become visible in order, or the follower skips some for good."""
    store = ControlStore(make_database())
    upgrade_control_schema(store)
    stop = threading.Event()
    seen: list[int] = []

    def write(n: int) -> None:
        for _ in range(15):
            with store.transaction() as connection:
                new = store_events.NewEvent(n, "db", "k", {}, utcnow())
                store_events.append_many(connection, [new, new])  # a worker's batch of steps
                time.sleep(random.random() / 50)  # commit late, while others draw ids

    def follow() -> None:
        while not stop.is_set():
            with store.transaction() as connection:
                seen.extend(e.id for e in store_events.after(connection, max(seen, default=0)))

    follower = threading.Thread(target=follow)
    follower.start()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    stop.set()
    follower.join()
    with store.transaction() as connection:
        seen.extend(e.id for e in store_events.after(connection, max(seen, default=0)))
    store.dispose()
    assert sorted(seen) == seen and len(seen) == len(set(seen)) == 120


def test_a_token_limited_to_one_database_streams_only_that_databases_events(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    admin, scoped = new_token(), new_token()
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        token_entry("admin", Role.ADMIN, [], admin)
        + token_entry("two-only", Role.OPERATOR, ["db2"], scoped)
    )
    urls = [f"sqlite:///{tmp_path / name}" for name in ("one.db", "two.db")]
    app = app_for(project("linear"), *urls, tokens_file=tokens, stream_seconds=0.5)
    client = app.test_client()
    as_admin = {"Authorization": f"Bearer {admin}"}
    post(client, "db1", headers=as_admin, action="upgrade", revision="heads")
    post(client, "db2", headers=as_admin, action="upgrade", revision="heads")
    seen = read(
        client, "/api/v1/events", Authorization=f"Bearer {scoped}", **{"Last-Event-ID": "0"}
    )
    assert [e["database"] for e in seen] == ["db2"]
    hidden = client.get(
        "/api/v1/operations/1/events", headers={"Authorization": f"Bearer {scoped}"}
    )
    assert hidden.status_code == 404
    assert client.get("/api/v1/events").status_code == 401
