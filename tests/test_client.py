"""The `migctl` client commands, run as a pipeline runs them, against a live `migctl serve`."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from service.client.exits import MEANINGS, Exit
from service.client.progress import Reporter
from service.client.sse import Event
from service.services.access import Role
from service.services.tokens import new_token, token_entry
from tests.helpers import (
    FAST,
    FIXTURES,
    MIGCTL,
    PostgresServer,
    Processes,
    free_port,
    wait_for,
)
from tests.serving import served_process
from tests.test_worker_processes import job_process

SLOW = ["51000001", "52000002", "53000003"]
README = Path(__file__).parent.parent / "README.md"


def databases_file(tmp_path: Path, *names: str) -> Path:
    """`names`, each a SQLite database of the slow project (revisions that sleep)."""
    project = tmp_path / "slow"
    if not project.exists():
        shutil.copytree(FIXTURES / "slow", project, ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "databases.toml"
    path.write_text(
        "".join(
            f'[databases.{name}]\nurl = "sqlite:///{tmp_path / name}.db"\n'
            f'alembic_config = "{project / "alembic.ini"}"\n\n'
            for name in names
        )
    )
    return path


@contextmanager
def server(tmp_path: Path, *args: str, seconds: float = 0.3, **env: str) -> Iterator[str]:
    """`migctl serve` (with its worker) on databases `one` and `two` of the slow project."""
    environ = {
        **FAST,
        "MIGCTL_DATABASES_FILE": str(databases_file(tmp_path, "one", "two")),
        "SLOW_SECONDS": str(seconds),
        **env,
    }
    with served_process(tmp_path, environ, "--workers", "1", *args) as base:
        wait_for(f"{base}/health/live")
        yield base


def client(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A client command as a pipeline step runs it: no CI variables unless given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MIGCTL_", "GITHUB_", "CI"))}
    base.pop("GITLAB_CI", None)
    return subprocess.run(
        [MIGCTL, *args],
        env={**base, "MIGCTL_URL": url, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_upgrade_waits_with_a_line_per_revision_and_exits_0_as_does_nothing_to_do(
    tmp_path: Path,
) -> None:
    with server(tmp_path) as url:
        done = client(url, "upgrade", "one", "--wait")
        assert done.returncode == Exit.OK, done.stderr
        for position, (revision, message) in enumerate(
            zip(SLOW, ["create slow table", "fill slow table", "index slow table"], strict=True),
            start=1,
        ):
            assert f"[{position}/3] {revision} {message}: started" in done.stderr
            assert f"[{position}/3] {revision} {message}: succeeded in 0." in done.stderr
        assert done.stdout == "operation 1 succeeded: one at 53000003 (3 steps)\n"
        again = client(url, "upgrade", "one", "--wait")
        assert again.returncode == Exit.OK and "(0 steps)" in again.stdout
        # The same revisions on another database: each start says how long is left.
        other = client(url, "upgrade", "two", "--wait")
        assert other.returncode == Exit.OK
        left = [float(s) for s in re.findall(r"started \(about (\d+\.\d) s left\)", other.stderr)]
        assert len(left) == 3 and left[0] > left[1] > left[2] > 0.2, other.stderr


def test_a_failing_revision_exits_1_with_its_error_and_sql(tmp_path: Path) -> None:
    with server(tmp_path, SLOW_FAIL="1") as url:
        failed = client(url, "upgrade", "one", "--wait")
    assert failed.returncode == Exit.FAILED
    assert "error: migration-failed at 53000003: 53000003: OperationalError" in failed.stderr
    assert "SQL of the failing step:\nINSERT INTO no_such_table VALUES (1);" in failed.stderr
    assert failed.stdout.startswith("operation 1 failed: one at 52000002")


def test_a_wait_that_times_out_exits_5_and_the_operation_goes_on(tmp_path: Path) -> None:
    with server(tmp_path, seconds=2) as url:
        late = client(url, "upgrade", "one", "--wait", "--timeout", "1")
        assert late.returncode == Exit.TIMED_OUT
        # queued or running, as the worker is quick or slow to claim it: it goes on either way
        assert re.search(r"operation 1 still (queued|running) after 1 s; it goes on", late.stdout)
        assert "(`migctl wait 1` to wait again)" in late.stdout
        resumed = client(url, "wait", "1", "--output", "json")
        assert resumed.returncode == Exit.OK
        assert json.loads(resumed.stdout)["status"] == "succeeded"


def test_a_cancelled_operation_exits_3_and_cancelling_it_again_is_refused_with_4(
    tmp_path: Path,
) -> None:
    with server(tmp_path, "--no-worker") as url:
        queued = client(url, "upgrade", "one")
        assert queued.returncode == Exit.OK and queued.stdout.startswith("operation 1 queued")
        assert client(url, "cancel", "1").returncode == Exit.OK
        waited = client(url, "wait", "1")
        assert waited.returncode == Exit.STOPPED
        assert waited.stdout == "operation 1 cancelled: never ran; one stays at base\n"
        again = client(url, "cancel", "1", "--output", "json")
    assert again.returncode == Exit.REFUSED
    assert json.loads(again.stdout)["code"] == "operation-not-cancellable"


def test_a_refusal_exits_4_and_json_output_carries_the_problem(tmp_path: Path) -> None:
    with server(tmp_path, "--no-worker") as url:
        refused = client(url, "upgrade", "one", "--expect-current", "51000001", "--output", "json")
        unknown = client(url, "status", "nope")
    assert refused.returncode == Exit.REFUSED
    assert json.loads(refused.stdout)["code"] == "precondition-failed"
    assert "refused (409 precondition-failed)" in refused.stderr
    assert unknown.returncode == Exit.REFUSED and "database-not-found" in unknown.stderr


def test_an_unreachable_server_exits_6_after_retrying(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    down = client(url, "status", "one", "--retry-seconds", "2")
    assert down.returncode == Exit.UNREACHABLE
    assert "retrying in" in down.stderr and f"{url} unreachable" in down.stderr
    assert time.monotonic() - started >= 1.5


def test_usage_errors_exit_2_before_anything_is_sent() -> None:
    wrong = client("http://127.0.0.1:9", "upgrade")
    assert wrong.returncode == Exit.USAGE and "the following arguments are required" in wrong.stderr


def test_the_same_step_retried_in_one_ci_run_queues_once_and_a_new_run_queues_again(
    tmp_path: Path,
) -> None:
    with server(tmp_path, "--no-worker") as url:
        first = client(url, "upgrade", "one", GITHUB_RUN_ID="1001")
        retried = client(url, "upgrade", "one", GITHUB_RUN_ID="1001")
        next_run = client(url, "upgrade", "one", GITHUB_RUN_ID="1002")
        gitlab = client(url, "upgrade", "one", CI_PIPELINE_ID="1001")
    ids = [p.stdout.split()[1] for p in (first, retried, next_run, gitlab)]
    assert ids == ["1", "1", "2", "3"]


def test_github_actions_get_a_group_an_error_command_and_a_step_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    with server(tmp_path, SLOW_FAIL="1") as url:
        failed = client(
            url,
            "upgrade",
            "one",
            "--wait",
            GITHUB_ACTIONS="true",
            GITHUB_RUN_ID="7",
            GITHUB_STEP_SUMMARY=str(summary),
            GITHUB_OUTPUT=str(tmp_path / "outputs"),
        )
    assert failed.returncode == Exit.FAILED
    assert (tmp_path / "outputs").read_text() == "operation-id=1\nstatus=failed\n"
    lines = failed.stderr.splitlines()
    assert lines[0] == "::group::migctl: upgrade one to heads (operation 1, 3 planned steps)"
    assert "::endgroup::" in lines
    error = next(line for line in lines if line.startswith("::error "))
    assert error.startswith("::error title=migctl: migration failed::migration-failed at 53000003")
    stop = next(line for line in lines if line.startswith("::stop-commands::"))
    assert f"::{stop.split('::')[2]}::" in lines  # the SQL is never read as commands
    text = summary.read_text()
    assert "### migctl: upgrade `one` to `heads`: failed" in text
    assert "| 2 | `52000002` | succeeded |" in text and "INSERT INTO no_such_table" in text


def test_gitlab_ci_gets_a_collapsible_section(tmp_path: Path) -> None:
    with server(tmp_path) as url:
        done = client(url, "upgrade", "one", "--wait", GITLAB_CI="true")
    assert done.returncode == Exit.OK
    assert "\x1b[0Ksection_start:" in done.stderr and ":migctl_1[" not in done.stderr
    assert done.stderr.count("\x1b[0Ksection_end:") == 1


def test_wait_for_exits_0_once_the_revision_is_reached_and_5_when_it_is_not(
    tmp_path: Path,
) -> None:
    with server(tmp_path, "--no-worker") as url:
        late = client(url, "wait-for", "one", "52000002", "--timeout", "1")
        assert late.returncode == Exit.TIMED_OUT and "not reached after 1 s" in late.stdout
    with server(tmp_path) as url:
        client(url, "upgrade", "one")
        reached = client(url, "wait-for", "one", "52000002", "--timeout", "30")
    assert reached.returncode == Exit.OK and "52000002 reached" in reached.stdout


def test_the_read_commands_print_text_or_json(tmp_path: Path) -> None:
    with server(tmp_path, "--no-worker") as url:
        status = client(url, "status", "one")
        pending = client(url, "pending", "one", "--to", "52000002", "--output", "json")
        preview = client(url, "preview", "one", "--to", "51000001")
        client(url, "upgrade", "two")
        listing = client(url, "operations", "two", "--output", "json")
    assert status.stdout == "one: behind at base; 3 pending\n"
    assert [r["revision"] for r in json.loads(pending.stdout)["revisions"]] == SLOW[:2]
    assert "CREATE TABLE slow" in preview.stdout and preview.stdout.endswith(";\n\n")
    assert [(o["id"], o["database"]) for o in json.loads(listing.stdout)] == [(1, "two")]


def test_a_wait_resumes_when_the_server_restarts_and_prints_each_step_once(
    tmp_path: Path, processes: Callable[[dict[str, str]], Processes]
) -> None:
    group = processes(
        {"MIGCTL_DATABASES_FILE": str(databases_file(tmp_path, "one")), "SLOW_SECONDS": "1.5"}
    )
    port = free_port()
    api = ("serve", "--no-worker", "--workers", "1", "--bind", f"127.0.0.1:{port}")
    serving = group.start(*api)
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health/live")
    group.start("worker")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client, url, "upgrade", "one", "--wait")
        time.sleep(2)  # the first step runs
        serving.terminate()
        serving.wait(30)
        time.sleep(1)
        group.start(*api)
        done = waiting.result()
    assert done.returncode == Exit.OK, done.stderr
    assert "retrying in" in done.stderr
    for revision in SLOW:
        assert done.stderr.count(f"{revision} ") == 2, done.stderr  # started, finished


def stream(url: str) -> tuple[int, dict[str, str]]:
    try:
        response = urllib.request.urlopen(url, timeout=10)
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers)
    response.readline()  # `retry:`: the stream is open; keep it so
    return response.status, {"response": response}  # type: ignore[dict-item]


def test_more_streams_than_threads_are_refused_beyond_the_cap_while_probes_answer(
    tmp_path: Path,
) -> None:
    # Four threads: one stream at most (MIGCTL_MAX_STREAMS defaults to a quarter).
    with server(tmp_path, "--threads", "4") as url:
        answers = [stream(f"{url}/api/v1/events") for _ in range(6)]
        before = time.monotonic()
        wait_for(f"{url}/health/live", timeout=2)
        assert time.monotonic() - before < 1
        assert sorted(status for status, _ in answers) == [200, 503, 503, 503, 503, 503]
        assert all(h["Retry-After"] == "5" for status, h in answers if status == 503)
        # The client falls back to polling while every stream slot is taken.
        done = client(url, "upgrade", "one", "--wait")
        for _, held in answers:
            if "response" in held:
                held["response"].close()  # type: ignore[attr-defined]
    assert done.returncode == Exit.OK, done.stderr
    assert all(f"[{n}/3] {rev}" in done.stderr for n, rev in enumerate(SLOW, start=1))


def test_the_readme_documents_every_exit_code() -> None:
    section = README.read_text().split("## From a pipeline", 1)[1].split("\n## ", 1)[0]
    for code in Exit:
        assert f"| {code.value} | {MEANINGS[code]} |" in section


def migrating(url: str) -> None:
    """Returns once the operation's first step has begun (read from its event stream)."""
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/events", timeout=60) as response:
                if any(line == b"event: step.started\n" for line in response):
                    return
        except urllib.error.HTTPError:
            time.sleep(0.1)  # not queued yet
    raise AssertionError("never migrating")


def test_a_wait_on_an_operation_whose_job_is_killed_exits_3(
    tmp_path: Path, processes: Callable[[dict[str, str]], Processes]
) -> None:
    group = processes(
        {
            "MIGCTL_DATABASES_FILE": str(databases_file(tmp_path, "one")),
            "SLOW_SECONDS": "30",
            "MIGCTL_MAX_STREAMS": "2",  # the client's and the test's
        }
    )
    url = group.api().removesuffix("/api/v1")
    worker = group.start("worker")
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client, url, "upgrade", "one", "--wait")
        migrating(f"{url}/api/v1/operations/1")
        os.kill(job_process(worker), signal.SIGKILL)
        done = waiting.result()
    assert done.returncode == Exit.STOPPED, done.stderr
    assert done.stdout.startswith("operation 1 interrupted: one at base")


def test_the_zero_configuration_example_upgrades_through_the_client(tmp_path: Path) -> None:
    with served_process(tmp_path, FAST, "--workers", "1") as url:
        wait_for(f"{url}/health/live")
        pending = client(url, "pending", "example")
        done = client(url, "upgrade", "example", "--wait", "--output", "json")
        status = client(url, "status", "example", "--output", "json")
    count = len(pending.stdout.splitlines())
    assert done.returncode == Exit.OK, done.stderr
    operation = json.loads(done.stdout)
    assert operation["status"] == "succeeded" and len(operation["steps"]) == count > 5
    assert done.stderr.count(": succeeded in ") == count
    assert json.loads(status.stdout)["up_to_date"] is True


def test_sigterm_ends_open_event_streams_at_once_so_the_server_stops_quickly(
    tmp_path: Path, processes: Callable[[dict[str, str]], Processes]
) -> None:
    group = processes({"MIGCTL_DATABASES_FILE": str(databases_file(tmp_path, "one"))})
    port = free_port()
    serving = group.start("serve", "--no-worker", "--workers", "1", "--bind", f"127.0.0.1:{port}")
    url = f"http://127.0.0.1:{port}"
    wait_for(f"{url}/health/live")
    with urllib.request.urlopen(f"{url}/api/v1/events", timeout=30) as response:
        assert response.readline() == b"retry: 3000\n"
        started = time.monotonic()
        serving.terminate()
        response.read()  # the stream ends cleanly, not cut: the client resumes elsewhere
    serving.wait(30)
    assert serving.returncode == 0 and time.monotonic() - started < 5  # not the 30 s grace


@pytest.mark.postgresql
def test_on_postgresql_an_upgrade_and_a_downgrade_report_as_on_sqlite(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    """The managed database and the control database both on PostgreSQL."""
    project = tmp_path / "slow"
    shutil.copytree(FIXTURES / "slow", project, ignore=shutil.ignore_patterns("__pycache__"))
    databases = tmp_path / "databases.toml"
    databases.write_text(
        f'[databases.pg]\nurl = "{postgres_server.create_database()}"\n'
        f'alembic_config = "{project / "alembic.ini"}"\n'
    )
    environ = {
        **FAST,
        "MIGCTL_DATABASES_FILE": str(databases),
        "MIGCTL_CONTROL_DATABASE_URL": postgres_server.create_database(),
        "SLOW_SECONDS": "0.3",
    }
    with served_process(tmp_path, environ, "--workers", "1") as url:
        wait_for(f"{url}/health/live")
        done = client(url, "upgrade", "pg", "53000003", "--wait")
        down = client(url, "downgrade", "pg", "base", "--wait")
    assert done.returncode == Exit.OK, done.stderr
    assert done.stdout == "operation 1 succeeded: pg at 53000003 (3 steps)\n"
    assert done.stderr.count(": succeeded in ") == 3
    assert down.returncode == Exit.OK and "pg at base (3 steps)" in down.stdout


def test_a_wait_says_when_the_operation_awaits_approval_and_when_it_is_queued() -> None:
    out = io.StringIO()
    reporter = Reporter(out, {}, lambda revision: "")
    for kind in ("operation.awaiting_approval", "operation.queued", "operation.running"):
        reporter.on_event(Event(1, kind, {"status": kind.split(".")[1]}))
    assert out.getvalue().splitlines() == [
        "awaiting approval: an approver must approve it",
        "queued",
        "claimed by a worker",
    ]


def approval_server(tmp_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of a server whose database `one` needs an approval, and its tokens."""
    issued = {name: new_token() for name in ("ci", "alice")}
    roles = {"ci": Role.OPERATOR, "alice": Role.APPROVER}
    tokens_file = tmp_path / "tokens.toml"
    tokens_file.write_text("\n".join(token_entry(n, roles[n], [], t) for n, t in issued.items()))
    databases = databases_file(tmp_path, "one")
    databases.write_text(databases.read_text() + "require_approval = true\n")
    environ = {
        **FAST,
        "MIGCTL_DATABASES_FILE": str(databases),
        "MIGCTL_TOKENS_FILE": str(tokens_file),
        "SLOW_SECONDS": "0.1",
    }
    return environ, issued


def approve(url: str, token: str, operation_id: int) -> None:
    request = urllib.request.Request(
        f"{url}/api/v1/operations/{operation_id}/approve",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def awaiting_approval(url: str, token: str, operation_id: int = 1) -> None:
    path = f"{url}/api/v1/operations/{operation_id}"
    request = urllib.request.Request(path, headers={"Authorization": f"Bearer {token}"})
    for _ in range(300):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if json.loads(response.read())["status"] == "awaiting_approval":
                    return
        except urllib.error.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("never awaiting approval")


def test_a_wait_says_how_many_approvals_from_whom_until_when_then_who_approved(
    tmp_path: Path,
) -> None:
    environ, tokens = approval_server(tmp_path)
    with served_process(tmp_path, environ, "--workers", "1") as url:
        wait_for(f"{url}/health/live")
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                client,
                url,
                "upgrade",
                "one",
                "--wait",
                MIGCTL_TOKEN=tokens["ci"],
                GITHUB_ACTIONS="true",
            )
            awaiting_approval(url, tokens["ci"])
            time.sleep(1)  # the client reads the stream
            approve(url, tokens["alice"], 1)
            done = waiting.result()
    assert done.returncode == Exit.OK, done.stderr
    notices = [line for line in done.stderr.splitlines() if line.startswith("::notice ")]
    assert len(notices) == 2, done.stderr
    assert re.fullmatch(
        r"::notice title=migctl: approval::operation 1 awaits 1 approval from a token with "
        r"the approve permission .* other than the requester, until \d{4}-\d\d-\d\d \d\d:\d\d UTC",
        notices[0],
    ), notices[0]
    assert notices[1] == "::notice title=migctl: approval::operation 1 approved by alice: queued"


def test_a_broken_project_exits_7_at_once_with_the_problems_code_and_detail(
    tmp_path: Path,
) -> None:
    with server(tmp_path, "--no-worker") as url:
        revision = next((tmp_path / "slow" / "migrations" / "versions").glob("52000002*.py"))
        revision.write_text(revision.read_text() + "\ndef broken(:\n")
        started = time.monotonic()
        broken = client(url, "status", "one")
        as_json = client(url, "upgrade", "one", "--output", "json")
    assert broken.returncode == Exit.UNAVAILABLE, broken.stderr
    assert time.monotonic() - started < 20  # not retried for --retry-seconds (60)
    assert "retrying in" not in broken.stderr and "unreachable" not in broken.stderr
    assert "unavailable (503 project-unavailable): " in broken.stderr
    assert "SyntaxError" in broken.stderr, broken.stderr
    assert as_json.returncode == Exit.UNAVAILABLE
    assert json.loads(as_json.stdout)["code"] == "project-unavailable"


def test_a_typo_in_a_migctl_variable_is_warned_about_and_migctl_run_id_is_known(
    tmp_path: Path,
) -> None:
    # The server (serve and its worker) accepts the variable a pipeline sets for the client.
    with server(tmp_path, "--no-worker", MIGCTL_RUN_ID="build-7") as url:
        status = client(url, "status", "one", MIGCTL_URLL="http://x", MIGCTL_RUN_ID="build-7")
    assert status.returncode == Exit.OK
    assert status.stderr == (
        "migctl: warning: unknown variable MIGCTL_URLL ignored (did you mean MIGCTL_URL?)\n"
    )


def test_a_rejected_operation_says_it_never_ran_where_the_database_stays_and_why(
    tmp_path: Path,
) -> None:
    environ, tokens = approval_server(tmp_path)
    with served_process(tmp_path, environ, "--workers", "1") as url:
        wait_for(f"{url}/health/live")
        client(url, "upgrade", "one", "51000001", MIGCTL_TOKEN=tokens["ci"])
        approve(url, tokens["alice"], 1)
        assert client(url, "wait", "1", MIGCTL_TOKEN=tokens["ci"]).returncode == Exit.OK
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                client, url, "upgrade", "one", "--wait", MIGCTL_TOKEN=tokens["ci"]
            )
            awaiting_approval(url, tokens["ci"], 2)
            request = urllib.request.Request(
                f"{url}/api/v1/operations/2/reject",
                data=json.dumps({"reason": "not on a Friday"}).encode(),
                method="POST",
                headers={
                    "Authorization": f"Bearer {tokens['alice']}",
                    "Content-Type": "application/json",
                },
            )
            urllib.request.urlopen(request, timeout=30).close()
            done = waiting.result()
    assert done.returncode == Exit.REFUSED, done.stderr
    assert done.stdout == (
        "operation 2 rejected by alice (not on a Friday): never ran; one stays at 51000001\n"
    )


def test_an_operation_found_stale_at_approval_tells_its_requester_to_ask_again(
    tmp_path: Path,
) -> None:
    environ, tokens = approval_server(tmp_path)
    with served_process(tmp_path, environ, "--workers", "1") as url:
        wait_for(f"{url}/health/live")
        client(url, "upgrade", "one", "51000001", MIGCTL_TOKEN=tokens["ci"])
        client(url, "upgrade", "one", "51000001", MIGCTL_TOKEN=tokens["ci"])
        approve(url, tokens["alice"], 1)
        assert client(url, "wait", "1", MIGCTL_TOKEN=tokens["ci"]).returncode == Exit.OK
        with pytest.raises(urllib.error.HTTPError) as stale:
            approve(url, tokens["alice"], 2)
        stale.value.close()
        done = client(url, "wait", "2", MIGCTL_TOKEN=tokens["ci"])
    assert stale.value.code == 409
    assert done.returncode == Exit.STOPPED, done.stderr
    assert done.stdout == (
        "operation 2 expired (approval-stale: request it again): never ran; one stays at 51000001\n"
    )


def requested(url: str, operation_id: int) -> dict[str, object]:
    """The details of the operation's `operation.requested` audit event."""
    path = f"{url}/api/v1/audit-events?operation_id={operation_id}&action=operation.requested"
    with urllib.request.urlopen(path, timeout=30) as response:
        [event] = json.loads(response.read())
    details: dict[str, object] = event["details"]
    return details


def test_a_change_can_acknowledge_lint_rules_and_accept_modified_revisions(
    tmp_path: Path,
) -> None:
    with server(tmp_path, MIGCTL_SCRIPT_RESCAN_SECONDS="0") as url:
        first = client(url, "upgrade", "one", "51000001", "--wait")
        assert first.returncode == Exit.OK, first.stderr
        revision = next((tmp_path / "slow" / "migrations" / "versions").glob("51000001*.py"))
        revision.write_text(revision.read_text() + "# edited after it ran\n")
        later = time.time() + 5
        os.utime(revision, (later, later))
        refused = client(url, "upgrade", "one", "52000002")
        assert refused.returncode == Exit.REFUSED and "revisions-modified" in refused.stderr
        rules = ("--acknowledge", "volatile-default", "--acknowledge", "adding-required-column")
        accepted = client(url, "upgrade", "one", "52000002", "--accept-modified", *rules, "--wait")
        assert accepted.returncode == Exit.OK, accepted.stderr
        details = requested(url, 2)
    assert details["accept_modified"] is True
    assert details["acknowledged"] == ["volatile-default", "adding-required-column"]


def test_a_retried_step_says_it_got_back_the_operation_of_an_earlier_attempt(
    tmp_path: Path,
) -> None:
    with server(tmp_path, "--no-worker") as url:
        first = client(url, "upgrade", "one", GITHUB_RUN_ID="1001")
        retried = client(url, "upgrade", "one", GITHUB_RUN_ID="1001")
        keyed = client(url, "upgrade", "one", "--idempotency-key", "release-7")
        keyed_again = client(url, "upgrade", "one", "--idempotency-key", "release-7")
    assert "replayed" not in first.stderr and "replayed" not in keyed.stderr
    assert retried.stdout.startswith("operation 1 queued")
    assert retried.stderr == (
        "migctl: replayed operation 1 from an earlier attempt of this run; "
        "pass --idempotency-key to queue anew\n"
    )
    assert keyed_again.stderr == (
        "migctl: replayed operation 2, queued earlier with Idempotency-Key release-7\n"
    )


def test_a_wait_that_polls_says_too_that_the_operation_awaits_approval_then_who_approved(
    tmp_path: Path,
) -> None:
    environ, tokens = approval_server(tmp_path)
    environ["MIGCTL_MAX_STREAMS"] = "0"  # every stream refused: the client polls
    with served_process(tmp_path, environ, "--workers", "1") as url:
        wait_for(f"{url}/health/live")
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                client, url, "upgrade", "one", "--wait", MIGCTL_TOKEN=tokens["ci"]
            )
            awaiting_approval(url, tokens["ci"])
            time.sleep(1)  # the client's first poll
            approve(url, tokens["alice"], 1)
            done = waiting.result()
    assert done.returncode == Exit.OK, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("operation 1 awaits 1 approval from ") for line in lines), lines
    assert "operation 1 approved by alice: queued" in lines
    assert all(f"[{n}/3] {rev}" in done.stderr for n, rev in enumerate(SLOW, start=1))
