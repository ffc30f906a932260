"""The client commands' options: `migctl status | pending | ... --help` shows them."""

from __future__ import annotations

import argparse
from collections.abc import Collection

from service.client import exits
from service.client.commands import (
    CLIENT_VARIABLES,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Command,
    cancel_operation,
    list_operations,
    queue_change,
    run,
    show_pending,
    show_preview,
    show_status,
    wait_for_revision,
    wait_operation,
)

DB = "a managed database's name"
OPERATION = "an operation's id"
EPILOG = "exit codes:\n" + exits.table()


def add_client_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    known: Collection[str] = CLIENT_VARIABLES,
) -> None:
    """`known`: the MIGCTL_* variables not to warn about (the server's and the client's)."""
    common = _common_options()

    def add(name: str, command: Command, summary: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(run=lambda args: run(command, args, known))
        return parser

    add("status", show_status, "(client) where a database stands").add_argument("database", help=DB)
    pending = add("pending", show_pending, "(client) the revisions an upgrade would apply")
    pending.add_argument("database", help=DB)
    pending.add_argument("--to", default="heads", help="destination (default heads)")
    preview = add("preview", show_preview, "(client) the SQL of a change, on stdout")
    preview.add_argument("database", help=DB)
    preview.add_argument(
        "--action", default="upgrade", choices=["upgrade", "downgrade", "stamp"], help="change"
    )
    preview.add_argument(
        "--from", dest="from_", default="current", metavar="FROM", help="default current"
    )
    preview.add_argument("--to", default=None, help="default heads (base for a downgrade)")
    preview.add_argument("--dialect", default=None, help="default the database's")
    for action in ("upgrade", "downgrade", "stamp"):
        article = "an" if action == "upgrade" else "a"
        _change_parser(add(action, queue_change, f"(client) queue {article} {action}"), action)
    wait = add("wait", wait_operation, "(client) follow an operation to its end")
    wait.add_argument("operation_id", type=int, help=OPERATION)
    _timeout_option(wait)
    wait_for = add(
        "wait-for", wait_for_revision, "(client) wait until a database reaches a revision"
    )
    wait_for.add_argument("database", help=DB)
    wait_for.add_argument("revision", help="id, head, branch@head ...")
    _timeout_option(wait_for)
    listing = add("operations", list_operations, "(client) list operations, newest first")
    listing.add_argument("database", nargs="?", help="only this database's")
    listing.add_argument("--status", default=None, help="only operations in this status")
    listing.add_argument(
        "--limit", type=int, default=20, choices=range(1, 101), metavar="N", help="at most N"
    )
    cancel = add("cancel", cancel_operation, "(client) cancel a queued operation")
    cancel.add_argument("operation_id", type=int, help=OPERATION)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("server")
    group.add_argument("--url", default=None, help=f"migctl server (MIGCTL_URL, {DEFAULT_URL})")
    group.add_argument("--token", default=None, help="bearer token (MIGCTL_TOKEN)")
    group.add_argument("--on-behalf-of", default=None, help="who the pipeline acts for")
    group.add_argument(
        "--output", choices=["text", "json"], default="text", help="json: one object on stdout"
    )
    group.add_argument(
        "--retry-seconds",
        type=float,
        default=60.0,
        help="keep retrying an unreachable or unavailable server this long (default 60)",
    )
    return common


def _change_parser(parser: argparse.ArgumentParser, action: str) -> None:
    parser.add_argument("database", help=DB)
    if action == "upgrade":
        parser.add_argument("revision", nargs="?", default="heads", help="default heads")
    else:
        parser.add_argument("revision", help="destination: id, base, -1, branch@head ...")
    if action == "stamp":
        parser.add_argument("--purge", action="store_true", help="empty the version table first")
    parser.add_argument(
        "--expect-current",
        default=None,
        metavar="REVS",
        help="comma-separated revisions the database must be at ('' for none)",
    )
    parser.add_argument("--reason", default=None, help="recorded with the operation")
    parser.add_argument(
        "--acknowledge",
        action="append",
        default=None,
        metavar="RULE",
        help="queue despite this lint rule's findings under lint = block (admin; repeatable)",
    )
    parser.add_argument(
        "--accept-modified",
        action="store_true",
        help="queue although applied revision files changed since they ran (admin)",
    )
    parser.add_argument(
        "--idempotency-key", default=None, help="default: from the request + CI run"
    )
    parser.add_argument("--wait", action="store_true", help="wait for the end, with progress")
    _timeout_option(parser)
    parser.set_defaults(action=action)


def _timeout_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait (default {DEFAULT_TIMEOUT:g}); the operation goes on after",
    )
