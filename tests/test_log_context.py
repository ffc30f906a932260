"""Log lines say what they concern: the request id while serving, the operation in the worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.helpers import MIGCTL, free_port, wait_for

Call = tuple[str, str, dict[str, str], bytes | None]
REQUEST_JSON = {"X-Request-ID": "req-json-1", "Content-Type": "application/json"}


def served_output(tmp_path: Path, *calls: Call, log_format: str = "text") -> str:
    """Run `migctl serve` (API and worker) on the example, make `calls`, return its output."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    environ |= {
        "MIGCTL_DATA_DIR": str(tmp_path / "var"),
        "MIGCTL_WORKER_POLL_SECONDS": "0.2",
        "MIGCTL_LOG_FORMAT": log_format,
    }
    output = tmp_path / "output.log"
    with output.open("w") as sink:
        server = subprocess.Popen(
            [MIGCTL, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=tmp_path,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/health/live")
            for method, path, headers, body in calls:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers
                )
                with urllib.request.urlopen(request, timeout=60) as response:
                    response.read()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    return output.read_text()


def test_the_access_line_and_every_line_logged_while_serving_carry_the_request_id(
    tmp_path: Path,
) -> None:
    headers = {"X-Request-ID": "req-status-4711"}
    text = served_output(tmp_path, ("GET", "/api/v1/databases/example/status", headers, None))
    access = [line for line in text.splitlines() if "GET /api/v1/databases/example/status" in line]
    assert access and all("request=req-status-4711" in line for line in access), access
    # The first request starts the project's runner: that line was logged while serving it.
    started = [
        line for line in text.splitlines() if "runner template" in line and "started" in line
    ]
    assert started and all("request=req-status-4711" in line for line in started), started
    assert "actor=anonymous" in started[0]


def test_every_line_of_the_worker_and_the_job_about_an_operation_names_it(
    tmp_path: Path,
) -> None:
    body = json.dumps({"action": "upgrade", "revision": "heads"}).encode()
    json_headers = {"Content-Type": "application/json"}
    text = served_output(
        tmp_path,
        ("POST", "/api/v1/databases/example/operations", json_headers, body),
        ("GET", "/api/v1/operations/1?wait=60", {}, None),
    )
    job_lines = [line for line in text.splitlines() if "Running upgrade" in line]
    assert len(job_lines) >= 12, text  # Alembic's line for each revision, from the job
    assert all(re.search(r"\boperation=1\b", line) for line in job_lines), job_lines
    worker_lines = [line for line in text.splitlines() if "job process" in line]
    assert worker_lines and all(
        "operation=1" in line and "db=example" in line for line in worker_lines
    )


def test_json_logs_are_one_object_a_line_with_the_context_as_fields(tmp_path: Path) -> None:
    body = json.dumps({"action": "upgrade", "revision": "heads"}).encode()
    text = served_output(
        tmp_path,
        ("POST", "/api/v1/databases/example/operations", REQUEST_JSON, body),
        ("GET", "/api/v1/operations/1?wait=60", {}, None),
        log_format="json",
    )
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    posted = [line for line in access if line.get("request_id") == "req-json-1"]
    assert posted and posted[0]["method"] == "POST" and posted[0]["status"] == "202"
    job = [line for line in lines if "Running upgrade" in line["message"]]
    assert job and all(line["operation_id"] == 1 for line in job)
