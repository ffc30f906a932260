"""Signed webhooks from the outbox: retries, Retry-After, 410, a receiver down then back."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import email.utils
import http.server
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from standardwebhooks import Webhook as Verifier

from service.api.app import create_app
from service.api.context import SERVICES
from service.services import webhooks
from service.services.access import Role
from service.services.control import upgrade_control_schema
from service.services.tokens import new_token, token_entry
from service.services.webhook_file import WebhooksFile
from service.services.webhook_http import Attempt, retry_after
from service.services.wiring import Services
from service.store import webhooks as outbox
from service.store.db import ControlStore
from service.worker.deliveries import Courier
from tests.helpers import (
    PostgresServer,
    Processes,
    free_port,
    fresh_control_url,
    managed,
    settings_for,
    wait_for,
)

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Receiver:
    """A local HTTP endpoint: answers with the scripted statuses (then 200), keeps what came,
    and checks each signature as a receiver would, with the standardwebhooks package."""

    def __init__(self, port: int, script: list[int | tuple[int, dict[str, str]]] | None = None):
        self.port, self.script, self.received = port, list(script or []), []
        self.verified: list[dict[str, Any]] = []
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append((headers, body))
                answer = receiver.script.pop(0) if receiver.script else 200
                status, extra = answer if isinstance(answer, tuple) else (answer, {})
                if status == 200:
                    receiver.verified.append(Verifier(SECRET).verify(body, headers))
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    @property
    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.received]


ADMIN = new_token()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(free_port()).start()
    yield found
    found.stop()


@pytest.fixture
def hooked(
    project: Callable[[str], Path], tmp_path: Path
) -> Callable[..., tuple[FlaskClient, Path]]:
    """An app whose webhooks file holds `hooks` (name -> TOML lines)."""

    def make(hooks: dict[str, str], **policy: Any) -> tuple[FlaskClient, Path]:
        path = tmp_path / "webhooks.toml"
        write_hooks(path, hooks)
        tokens = tmp_path / "tokens.toml"
        tokens.write_text(
            token_entry("root", Role.ADMIN, [], ADMIN)
            + token_entry("alice", Role.APPROVER, [], new_token())
            + token_entry("bob", Role.APPROVER, ["elsewhere"], new_token())
        )
        database = managed("db", project("linear"), f"sqlite:///{tmp_path / 'db.sqlite'}")
        database = dataclasses.replace(database, **policy)
        settings = settings_for(
            database,
            tokens_file=tokens,
            webhooks_file=path,
            webhooks_environ={"HOOK_SECRET": SECRET},
            public_url="https://migctl.example.com",
        )
        return create_app(settings).test_client(), path

    return make


def write_hooks(path: Path, hooks: dict[str, str]) -> None:
    path.write_text(
        "".join(
            f'[webhooks.{name}]\nsecret_env = "HOOK_SECRET"\nbackoff_seconds = 0.05\n{lines}\n'
            for name, lines in hooks.items()
        )
    )


def local(receiver: Receiver, extra: str = "") -> str:
    return f'url = "http://127.0.0.1:{receiver.port}/hook"\nallow_private = true\n{extra}'


def call(client: FlaskClient, method: str, path: str, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    return client.open(f"/api/v1{path}", method=method, json=body or None, headers=headers)


def queue_upgrade(client: FlaskClient) -> int:
    response = call(client, "POST", "/databases/db/operations", action="upgrade", revision="heads")
    assert response.status_code == 202
    return int(response.json["id"])


def services_of(client: FlaskClient) -> Services:
    return client.application.extensions[SERVICES]


def deliver_until_settled(client: FlaskClient, seconds: float = 10) -> None:
    """What a worker's courier does, until no delivery is pending (or time is up)."""
    found = services_of(client)
    assert found.webhooks is not None
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        webhooks.deliver_due(found.store, found.webhooks)
        pending = [d for d in deliveries(client, "chat") if d["status"] == "pending"]
        if not pending:
            return
        time.sleep(0.05)
    raise AssertionError("deliveries still pending")


def deliveries(client: FlaskClient, name: str) -> list[dict[str, Any]]:
    response = call(client, "GET", f"/webhooks/{name}/deliveries")
    assert response.status_code == 200, response.json
    return list(response.json)


def test_a_failing_receiver_gets_the_same_signed_message_until_it_accepts_it(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    receiver.script = [500, 502]
    client, _ = hooked({"chat": local(receiver, 'events = ["operation.requested"]')})
    operation_id = queue_upgrade(client)
    deliver_until_settled(client)
    assert len(receiver.received) == 3 and len(set(receiver.ids)) == 1
    (event,) = receiver.verified  # the accepted attempt's signature verified
    assert event["type"] == "operation.requested"
    assert event["data"]["operation"]["id"] == operation_id
    assert event["data"]["link"] == f"https://migctl.example.com/console/operations/{operation_id}"
    (delivery,) = deliveries(client, "chat")
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200 and receiver.ids[0] == f"msg_migctl_{delivery['id']}"


def test_a_receiver_down_for_a_while_gets_every_event_once_it_is_back(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    client, _ = hooked({"chat": local(receiver)})
    receiver.stop()
    first, second = queue_upgrade(client), queue_upgrade(client)
    assert call(client, "POST", f"/operations/{second}/cancel").status_code == 200
    found = services_of(client)
    assert found.webhooks is not None
    for _ in range(3):
        webhooks.deliver_due(found.store, found.webhooks)
        time.sleep(0.1)
    waiting = deliveries(client, "chat")
    assert all(d["status"] == "pending" and d["attempts"] >= 1 for d in waiting)
    assert "Connection" in waiting[0]["last_error"]
    back = Receiver(receiver.port).start()
    try:
        deliver_until_settled(client)
    finally:
        back.stop()
    kinds = sorted(event["type"] for event in back.verified)
    assert kinds == ["operation.cancelled", "operation.requested", "operation.requested"]
    assert {e["data"]["operation"]["id"] for e in back.verified} == {first, second}
    receiver.start()  # for the fixture's stop


def test_retry_after_is_honoured_and_the_retry_limit_ends_a_delivery(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    receiver.script = [(503, {"Retry-After": "30"})]
    client, _ = hooked({"chat": local(receiver, "max_attempts = 2")})
    queue_upgrade(client)
    found = services_of(client)
    assert found.webhooks is not None
    webhooks.deliver_due(found.store, found.webhooks)
    (delivery,) = deliveries(client, "chat")
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 503
    assert delivery["next_attempt_at"] > delivery["last_attempt_at"]
    assert webhooks.deliver_due(found.store, found.webhooks) == 0  # not due for 30 s
    client2, _ = hooked({"chat": local(receiver, "max_attempts = 2")})
    receiver.script = [500, 500, 500]
    queue_upgrade(client2)
    deliver_until_settled(client2)
    (failed,) = deliveries(client2, "chat")
    assert failed["status"] == "failed" and failed["attempts"] == 2


def test_a_410_disables_the_webhook_until_its_url_changes(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    receiver.script = [410]
    client, path = hooked({"chat": local(receiver)})
    queue_upgrade(client)
    deliver_until_settled(client)
    assert deliveries(client, "chat")[0]["status"] == "failed"
    (hook,) = call(client, "GET", "/webhooks").json
    assert hook["enabled"] is False and "410" in hook["disabled_reason"]
    queue_upgrade(client)
    assert len(deliveries(client, "chat")) == 1  # nothing more for a gone receiver
    write_hooks(path, {"chat": local(receiver).replace("/hook", "/hook2")})
    queue_upgrade(client)
    assert len(deliveries(client, "chat")) == 2


def test_a_loopback_target_is_refused_unless_the_file_allows_private_addresses(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    client, _ = hooked({"chat": f'url = "http://127.0.0.1:{receiver.port}/hook"\nmax_attempts = 1'})
    queue_upgrade(client)
    deliver_until_settled(client)
    (delivery,) = deliveries(client, "chat")
    assert delivery["status"] == "failed" and "target refused" in delivery["last_error"]
    assert receiver.received == []


def test_webhooks_are_listed_without_credentials_and_reloaded_without_a_restart(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    url = f"http://bot:hunter2@127.0.0.1:{receiver.port}/services/T0/B0/s3cr3t?token=abc"
    client, path = hooked({"chat": f'url = "{url}"\nformat = "slack"'})
    listed = call(client, "GET", "/webhooks")
    assert listed.status_code == 200
    assert listed.json[0]["url"] == f"http://127.0.0.1:{receiver.port}/***"
    assert not any(s in listed.get_data(as_text=True) for s in ("hunter2", "s3cr3t", "abc", SECRET))
    write_hooks(path, {"chat": local(receiver), "ops": local(receiver, 'format = "teams"')})
    assert [hook["name"] for hook in call(client, "GET", "/webhooks").json] == ["chat", "ops"]


def test_an_admin_redelivers_with_the_same_webhook_id(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    client, _ = hooked({"chat": local(receiver, 'events = ["operation.requested"]')})
    queue_upgrade(client)
    deliver_until_settled(client)
    (delivery,) = deliveries(client, "chat")
    again = call(client, "POST", f"/webhooks/chat/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 200 and again.json["status"] == "pending"
    deliver_until_settled(client)
    assert len(receiver.verified) == 2 and len(set(receiver.ids)) == 1
    missing = call(client, "POST", "/webhooks/chat/deliveries/999/redeliver")
    assert missing.status_code == 404 and missing.json["code"] == "webhook-not-found"


def test_the_delivery_row_is_written_with_the_audit_event_or_not_at_all(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    client, _ = hooked({"chat": local(receiver)})
    refused = call(client, "POST", "/databases/db/operations", action="upgrade", revision="nope")
    assert refused.status_code == 404
    (delivery,) = deliveries(client, "chat")
    events = call(client, "GET", "/audit-events").json
    assert [e["id"] for e in events] == [delivery["event_id"]]
    assert delivery["event_type"] == "operation.refused"
    body = json.loads(_body(client, delivery["id"]))
    assert body["type"] == "operation.refused"


def _body(client: FlaskClient, delivery_id: int) -> str:
    with services_of(client).store.transaction() as connection:
        found = outbox.get(connection, delivery_id)
    assert found is not None
    return found.body


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store(request: pytest.FixtureRequest) -> Iterator[ControlStore]:
    if request.param == "sqlite":
        made = ControlStore(fresh_control_url())
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        made = ControlStore(server.create_database())
        upgrade_control_schema(made)
    yield made
    made.dispose()


def test_concurrent_couriers_never_send_a_delivery_twice(
    store: ControlStore, tmp_path: Path
) -> None:
    path = tmp_path / "webhooks.toml"
    write_hooks(path, {"chat": 'url = "https://hooks.example.com/x"'})
    hooks = WebhooksFile(path, {"HOOK_SECRET": SECRET})
    now = dt.datetime.now(dt.UTC)
    with store.transaction() as connection:
        for n in range(60):
            outbox.insert(
                connection,
                {
                    "webhook": "chat",
                    "event_id": n,
                    "event_type": "operation.requested",
                    "body": "{}",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
    sent: list[str] = []

    def send(_hook: Any, message_id: str, _body: str) -> Attempt:
        sent.append(message_id)
        time.sleep(0.001)
        return Attempt(200)

    def courier() -> None:
        while webhooks.deliver_due(store, hooks, limit=5, send=send):
            pass

    threads = [threading.Thread(target=courier) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sent) == 60 and len(set(sent)) == 60


def test_a_workers_courier_delivers_while_the_worker_runs(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    client, _ = hooked({"chat": local(receiver, 'format = "slack"')})
    found = services_of(client)
    assert found.webhooks is not None
    stopping = threading.Event()
    with Courier(found.store, found.webhooks, stopping):
        queue_upgrade(client)
        deadline = time.monotonic() + 10
        while not receiver.verified and time.monotonic() < deadline:
            time.sleep(0.05)
        stopping.set()
    (message,) = receiver.verified
    assert message["text"].startswith("db: upgrade to heads, asked by root, is queued")
    assert message["blocks"][0]["type"] == "header"


def test_approval_requests_and_decisions_reach_the_channel(
    hooked: Callable[..., tuple[FlaskClient, Path]], receiver: Receiver
) -> None:
    client, _ = hooked(
        {"chat": local(receiver, 'events = ["approval.*"]\nformat = "slack"')},
        require_approval=True,
        environment="production",
    )
    operation_id = queue_upgrade(client)
    rejected = call(client, "POST", f"/operations/{operation_id}/reject", reason="freeze week")
    assert rejected.status_code == 200
    deliver_until_settled(client)
    asked, decided = receiver.verified
    first = json.loads(_body(client, deliveries(client, "chat")[-1]["id"]))  # newest first
    assert first["blocks"][-1]["elements"][0]["action_id"] == "migctl_approve"
    assert "db (production): upgrade to heads, asked by root, is awaiting approval" in asked["text"]
    assert "needs 1 approval before" in asked["text"]
    assert asked["text"].endswith("UTC from alice.")  # not root (the requester), not bob's scope
    assert decided["text"].endswith("root rejected it: freeze week")


def test_settled_deliveries_are_pruned_after_the_retention_and_pending_ones_never(
    store: ControlStore,
) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=31)
    with store.transaction() as connection:
        for n, status in enumerate(("delivered", "failed", "pending")):
            outbox.insert(
                connection,
                {
                    "webhook": "chat",
                    "event_id": n,
                    "event_type": "operation.requested",
                    "body": "{}",
                    "status": status,
                    "attempts": 1,
                    "next_attempt_at": old,
                    "created_at": old,
                },
            )
    assert webhooks.prune(store) == 2
    assert webhooks.prune(store) == 0
    with store.transaction() as connection:
        (left,), _ = outbox.list_page(connection, "chat", 0, 10)
    assert left.status == "pending"


def test_migctl_serve_delivers_signed_webhooks_of_an_operation_from_request_to_end(
    project: Callable[[str], Path],
    tmp_path: Path,
    processes: Callable[..., Processes],
    receiver: Receiver,
) -> None:
    hooks = tmp_path / "webhooks.toml"
    write_hooks(hooks, {"chat": local(receiver, 'events = ["operation.*"]')})
    group = processes(
        {
            "MIGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
            "MIGCTL_ALEMBIC_CONFIG": str(project("linear")),
            "MIGCTL_WEBHOOKS_FILE": str(hooks),
            "MIGCTL_PUBLIC_URL": "https://migctl.example.com",
            "HOOK_SECRET": SECRET,
        }
    )
    port = free_port()
    group.start("serve", "--bind", f"127.0.0.1:{port}")
    wait_for(f"http://127.0.0.1:{port}/health/ready")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/databases/default/operations",
        data=json.dumps({"action": "upgrade", "revision": "heads"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        operation_id = json.loads(response.read())["id"]
    deadline = time.monotonic() + 60
    while len(receiver.verified) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    kinds = [event["type"] for event in receiver.verified]
    assert kinds == ["operation.requested", "operation.started", "operation.succeeded"]
    done = receiver.verified[-1]["data"]
    assert done["operation"]["id"] == operation_id and done["operation"]["steps_done"] == 4


def test_backoff_doubles_with_jitter_up_to_a_cap_and_retry_after_takes_seconds_or_a_date() -> None:
    for attempts, ceiling in ((1, 5.0), (2, 10.0), (5, 80.0)):
        delays = [webhooks.backoff(5.0, attempts) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(set(delays)) > 100
    assert webhooks.backoff(5.0, 40) <= webhooks.MAX_BACKOFF_SECONDS
    assert retry_after("120") == 120.0 and retry_after("soon") is None
    in_a_minute = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert 55 <= (retry_after(in_a_minute) or 0) <= 60
    assert retry_after("99999999") == 86_400.0
