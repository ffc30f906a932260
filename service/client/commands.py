"""The client commands of `migctl`: call the server, print, choose the exit code.

They read only their own variables (MIGCTL_URL, MIGCTL_TOKEN, CI variables), never the
server's settings, and reach the server over HTTP alone.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from service.client.approval import approval_note
from service.client.exits import BY_STATUS, Exit
from service.client.follow import follow
from service.client.idempotency import ci_run, default_key
from service.client.progress import Reporter
from service.client.transport import Answer, ClientError, Server, quote

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 1800.0
Command = Callable[[argparse.Namespace, Server], int]
NEVER_RAN = frozenset({"rejected", "cancelled", "expired"})
CLIENT_VARIABLES = frozenset({"MIGCTL_URL", "MIGCTL_TOKEN", "MIGCTL_RUN_ID"})


def _warn_unknown(environ: Mapping[str, str], known: Collection[str]) -> None:
    """A warning per MIGCTL_* variable nobody reads (a typo), as the server refuses them."""
    for name in sorted(k for k in environ if k.startswith("MIGCTL_") and k not in known):
        near = difflib.get_close_matches(name, sorted(CLIENT_VARIABLES), n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        print(f"migctl: warning: unknown variable {name} ignored{hint}", file=sys.stderr)


def run(
    command: Command, args: argparse.Namespace, known: Collection[str] = CLIENT_VARIABLES
) -> int:
    """Run a command against the server the options (or MIGCTL_URL) name; its exit code."""
    environ = os.environ
    _warn_unknown(environ, known)
    server = Server(
        url=args.url or environ.get("MIGCTL_URL") or DEFAULT_URL,
        token=args.token or environ.get("MIGCTL_TOKEN") or None,
        on_behalf_of=args.on_behalf_of,
        patience=args.retry_seconds,
    )
    try:
        return command(args, server)
    except ClientError as exc:
        print(f"migctl: {exc}", file=sys.stderr)
        if args.output == "json" and exc.problem is not None:
            _print_json(exc.problem)
        return exc.exit_code


def show_status(args: argparse.Namespace, server: Server) -> int:
    status = server.call("GET", f"/databases/{quote(args.database)}/status").json()
    if args.output == "json":
        return _print_json(status)
    heads = ", ".join(status.get("current_heads") or []) or "base"
    print(
        f"{args.database}: {status.get('state')} at {heads}; {status.get('pending_count')} pending"
    )
    return Exit.OK


def show_pending(args: argparse.Namespace, server: Server) -> int:
    path = f"/databases/{quote(args.database)}/pending?to={quote(args.to)}"
    plan = server.call("GET", path).json()
    if args.output == "json":
        return _print_json(plan)
    for revision in plan["revisions"]:
        print(f"{revision['revision']}  {revision.get('message') or ''}".rstrip())
    print(f"{plan['count']} pending to {args.to}", file=sys.stderr)
    return Exit.OK


def show_preview(args: argparse.Namespace, server: Server) -> int:
    query = {"action": args.action, "from": args.from_, "to": args.to, "dialect": args.dialect}
    encoded = "&".join(f"{k}={quote(v)}" for k, v in query.items() if v is not None)
    accept = "application/json" if args.output == "json" else "text/plain"
    path = f"/databases/{quote(args.database)}/sql?{encoded}"
    answer = server.call("GET", path, headers={"Accept": accept})
    sys.stdout.write(answer.body.decode("utf-8"))
    return Exit.OK


def queue_change(args: argparse.Namespace, server: Server) -> int:
    body: dict[str, Any] = {"action": args.action, "revision": args.revision}
    if args.expect_current is not None:
        body["expected_current"] = [r for r in args.expect_current.split(",") if r]
    if args.reason:
        body["reason"] = args.reason
    if getattr(args, "purge", False):
        body["purge"] = True
    if args.acknowledge:
        body["acknowledge"] = list(dict.fromkeys(args.acknowledge))
    if args.accept_modified:
        body["accept_modified"] = True
    key = args.idempotency_key or default_key(server.url, args.database, body, os.environ)
    path = f"/databases/{quote(args.database)}/operations"
    answer = server.call("POST", path, body=body, headers={"Idempotency-Key": key})
    operation = answer.json()
    if _replayed(answer, operation):
        _say_replayed(operation["id"], key, derived=args.idempotency_key is None)
    if args.wait:
        return _await(args, server, operation)
    if args.output == "json":
        _print_json(operation)
    else:
        print(f"operation {operation['id']} {operation['status']} (Idempotency-Key: {key})")
    return BY_STATUS.get(operation["status"], Exit.OK)


def _replayed(answer: Answer, operation: Mapping[str, Any]) -> bool:
    """Whether the server gave back an operation an earlier request queued: its record keeps
    that request's id, while each answer carries its own (X-Request-ID)."""
    ours = next((v for k, v in answer.headers.items() if k.lower() == "x-request-id"), None)
    theirs = operation.get("request_id")
    return bool(ours and theirs) and ours != theirs


def _say_replayed(operation_id: int, key: str, derived: bool) -> None:
    if derived and ci_run(os.environ):
        line = (
            f"replayed operation {operation_id} from an earlier attempt of this run; "
            "pass --idempotency-key to queue anew"
        )
    else:
        line = f"replayed operation {operation_id}, queued earlier with Idempotency-Key {key}"
    github = os.environ.get("GITHUB_ACTIONS") == "true"
    print(
        f"::notice title=migctl: replayed::{line}" if github else f"migctl: {line}", file=sys.stderr
    )


def wait_operation(args: argparse.Namespace, server: Server) -> int:
    operation = server.call("GET", f"/operations/{args.operation_id}").json()
    return _await(args, server, operation)


def _await(args: argparse.Namespace, server: Server, operation: Mapping[str, Any]) -> int:
    """Follow the operation with progress on stderr; its end (or timeout) on stdout."""
    reporter = Reporter(
        sys.stderr,
        os.environ,
        _describer(server, operation["database"]),
        approval_note(server, operation["id"]),
    )
    reporter.begin(operation)
    deadline = time.monotonic() + args.timeout
    ended = follow(server, operation["id"], deadline, reporter.on_event)
    final = ended or server.call("GET", f"/operations/{operation['id']}").json()
    reporter.end(final, timed_out=ended is None)
    if args.output == "json":
        _print_json(final)
    else:
        print(_outcome(server, final, ended is None, args.timeout))
    return Exit.TIMED_OUT if ended is None else BY_STATUS.get(final["status"], Exit.FAILED)


def _outcome(server: Server, operation: Mapping[str, Any], timed_out: bool, timeout: float) -> str:
    name = f"operation {operation['id']}"
    if timed_out:
        return (
            f"{name} still {operation['status']} after {timeout:g} s; it goes on "
            f"(`migctl wait {operation['id']}` to wait again)"
        )
    if operation.get("started_at") is None and operation["status"] in NEVER_RAN:
        return (
            f"{name} {operation['status']}{_rejection(operation)}{_stale(operation)}: never ran; "
            f"{operation['database']} stays at {_current(server, operation['database'])}"
        )
    heads = ", ".join(operation.get("heads_after") or []) or "base"
    steps = len(operation.get("steps") or [])
    return f"{name} {operation['status']}: {operation['database']} at {heads} ({steps} steps)"


def _rejection(operation: Mapping[str, Any]) -> str:
    """` by alice (not on a Friday)` for a rejected operation, else ""."""
    for approval in operation.get("approvals") or []:
        if approval.get("decision") == "rejected":
            reason = f" ({approval['reason']})" if approval.get("reason") else ""
            return f" by {approval.get('actor')}{reason}"
    return ""


def _stale(operation: Mapping[str, Any]) -> str:
    """` (approval-stale: request it again)` for one that changed before its approval."""
    error = operation.get("error") or {}
    return f" ({error['code']}: request it again)" if error.get("code") == "approval-stale" else ""


def _current(server: Server, database: str) -> str:
    """The database's heads now (the operation's own record has none: it never ran)."""
    path = f"/databases/{quote(database)}/status"
    try:
        status = server.call("GET", path, deadline=time.monotonic() + 10).json()
    except ClientError:
        return "its current revision (its status could not be read)"
    return ", ".join(status.get("current_heads") or []) or "base"


def wait_for_revision(args: argparse.Namespace, server: Server) -> int:
    deadline = time.monotonic() + args.timeout
    path = f"/databases/{quote(args.database)}/wait?revision={quote(args.revision)}"
    while True:
        chunk = max(0.0, min(60.0, deadline - time.monotonic()))
        answer = server.call("GET", f"{path}&timeout={chunk:.1f}", deadline=deadline + 5)
        state = answer.json()
        over = time.monotonic() >= deadline
        if state["reached"] or over:
            break
        if "Retry-After" in answer.headers:
            time.sleep(min(float(answer.headers["Retry-After"]), 5.0))
    if args.output == "json":
        _print_json(state)
    else:
        heads = ", ".join(state["current_heads"]) or "base"
        verdict = "reached" if state["reached"] else f"not reached after {args.timeout:g} s"
        print(f"{args.database}: {args.revision} {verdict} (at {heads})")
    return Exit.OK if state["reached"] else Exit.TIMED_OUT


def list_operations(args: argparse.Namespace, server: Server) -> int:
    prefix = f"/databases/{quote(args.database)}" if args.database else ""
    query = f"?page_size={args.limit}" + (f"&status={quote(args.status)}" if args.status else "")
    listing = server.call("GET", f"{prefix}/operations{query}").json()
    if args.output == "json":
        return _print_json(listing)
    for op in listing:
        print(
            f"{op['id']:>6}  {op['status']:<11} {op['action']:<9} {op['database']:<16} "
            f"{op['revision']}  {op['requested_at']}"
        )
    return Exit.OK


def cancel_operation(args: argparse.Namespace, server: Server) -> int:
    operation = server.call("POST", f"/operations/{args.operation_id}/cancel").json()
    if args.output == "json":
        return _print_json(operation)
    print(f"operation {operation['id']} {operation['status']}")
    return Exit.OK


def _describer(server: Server, database: str) -> Callable[[str], str]:
    """A revision's message, asked once (a progress line is never worth failing for)."""
    known: dict[str, str] = {}

    def describe(revision: str) -> str:
        if revision not in known:
            path = f"/databases/{quote(database)}/revisions/{quote(revision)}"
            try:
                known[revision] = (
                    server.call("GET", path, deadline=time.monotonic() + 5).json()["message"] or ""
                )
            except (ClientError, KeyError, TypeError, ValueError):
                known[revision] = ""
        return known[revision]

    return describe


def _print_json(value: Any) -> int:
    print(json.dumps(value))
    return Exit.OK
