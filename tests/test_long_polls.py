"""Long polls (`GET /operations/{id}?wait=`) never take every thread: probes stay fast."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.api.app import create_app
from service.settings import Settings
from tests.helpers import managed, settings_for
from tests.serving import served_process, wait_for

WAIT = 8


def get(url: str, timeout: float = 30) -> tuple[int, dict[str, str], Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, dict(response.headers), json.loads(response.read())


def queue_upgrade(base: str) -> int:
    request = urllib.request.Request(
        f"{base}/api/v1/databases/example/operations",
        data=json.dumps({"action": "upgrade", "revision": "heads"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(json.loads(response.read())["id"])


def test_health_answers_within_a_second_while_more_long_polls_than_threads_wait(
    tmp_path: Path,
) -> None:
    # One process of four threads, and no worker: the queued operation never ends.
    with served_process(tmp_path, {}, "--workers", "1", "--threads", "4", "--no-worker") as base:
        wait_for(f"{base}/health/live")
        operation = f"{base}/api/v1/operations/{queue_upgrade(base)}?wait={WAIT}"
        with ThreadPoolExecutor(max_workers=12) as pool:
            started = time.monotonic()
            polls = [pool.submit(get, operation) for _ in range(12)]
            time.sleep(1)  # every poll has reached the server
            latencies = []
            for _ in range(5):
                before = time.monotonic()
                status, _headers, body = get(f"{base}/health/live", timeout=5)
                latencies.append(time.monotonic() - before)
                assert (status, body) == (200, {"status": "alive"})
            answers = [poll.result() for poll in polls]
        assert max(latencies) < 1, latencies
        assert all(status == 200 and body["status"] == "queued" for status, _, body in answers)
        at_once = [headers for _, headers, _ in answers if "Retry-After" in headers]
        assert len(at_once) == 12 - 2  # four threads: two may wait (MIGCTL_MAX_WAITERS)
        assert time.monotonic() - started >= WAIT  # the two that waited did wait


@pytest.fixture
def waiting_client(project: Callable[[str], Path], tmp_path: Path) -> FlaskClient:
    database = managed("db", project("linear"), f"sqlite:///{tmp_path / 'db.sqlite'}")
    return create_app(settings_for(database, max_waiters=1)).test_client()


def test_a_long_poll_beyond_the_cap_answers_at_once_with_retry_after(
    waiting_client: FlaskClient,
) -> None:
    client = waiting_client
    queued = client.post(
        "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads"}
    )
    url = f"/api/v1/operations/{queued.json['id']}"
    holder = threading.Thread(target=client.get, args=(f"{url}?wait=3",))
    holder.start()
    time.sleep(0.5)
    started = time.monotonic()
    refused = client.get(f"{url}?wait=3")
    assert time.monotonic() - started < 1
    assert refused.status_code == 200 and refused.json["status"] == "queued"
    assert int(refused.headers["Retry-After"]) > 0
    holder.join()
    plain = client.get(url)  # no wait: no slot needed, no Retry-After
    assert plain.status_code == 200 and "Retry-After" not in plain.headers


def test_max_waiters_defaults_to_half_the_threads_and_can_be_set() -> None:
    assert Settings.from_env({"MIGCTL_THREADS": "8"}).waiter_limit == 4
    assert Settings.from_env({"MIGCTL_THREADS": "1"}).waiter_limit == 0
    assert Settings.from_env({"MIGCTL_MAX_WAITERS": "3"}).waiter_limit == 3
