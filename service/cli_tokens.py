"""`migctl token create | list | revoke`: API tokens and the tokens file."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from service.errors import ConfigError
from service.services.access import Role
from service.services.token_file import add_token, list_tokens, revoke_token
from service.services.tokens import new_token, token_entry, token_hash
from service.settings import normalized, tokens_file_from_env

EXIT_REFUSED = 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_FILE_HELP = "the tokens file (default: MIGCTL_TOKENS_FILE)"


def add_token_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token", help="API tokens: create, list, revoke", description="API tokens."
    )
    actions = token.add_subparsers(required=True, metavar="ACTION", title="actions")
    _add_create(actions)
    listing = actions.add_parser("list", help="names, roles and databases (never hashes)")
    listing.add_argument("--file", type=Path, help=_FILE_HELP)
    listing.add_argument("--json", action="store_true", help="print JSON, for scripts")
    listing.set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="remove a token from the tokens file")
    revoke.add_argument("name", help="the token's name, as `token list` shows it")
    revoke.add_argument("--file", type=Path, help=_FILE_HELP)
    revoke.set_defaults(run=_revoke)


def _add_create(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = actions.add_parser(
        "create",
        help="make a token; prints it once",
        description="Make a token and print it once; migctl keeps only its SHA-256. Without "
        "--file or --write, print the entry to add to the tokens file yourself.",
    )
    create.add_argument("--name", required=True, help="who uses it: ci-deploy, chat-bot ...")
    create.add_argument(
        "--role", required=True, choices=[str(role) for role in Role], help="what it may do"
    )
    create.add_argument(
        "--database",
        action="append",
        default=[],
        help="limit it to this database (repeat for several; default: every database)",
    )
    create.add_argument("--file", type=Path, help="add the entry to this tokens file")
    create.add_argument(
        "--write", action="store_true", help="add the entry to the file MIGCTL_TOKENS_FILE names"
    )
    create.add_argument(
        "--replace", action="store_true", help="overwrite an entry of the same name"
    )
    create.add_argument(
        "--json", action="store_true", help='print {"name", "token", "sha256", "toml"}'
    )
    create.set_defaults(run=_create)


def _create(args: argparse.Namespace) -> int:
    if not _NAME.fullmatch(args.name):
        raise ConfigError("--name is 1-63 letters, digits, '.', '_' or '-'.")
    token, role = new_token(), Role(args.role)
    path = _tokens_file(args.file) if args.file or args.write else None
    if path is not None and not add_token(
        path, args.name, role, args.database, token_hash(token), replace=args.replace
    ):
        return _refuse(f"{path} has a token named {args.name!r} already: pass --replace.")
    entry = token_entry(args.name, role, args.database, token)
    if args.json:
        document = {"name": args.name, "token": token, "sha256": token_hash(token), "toml": entry}
        print(json.dumps(document, indent=2))
        return 0
    print(f"token (shown once; give it to {args.name}, store it as a secret):\n\n  {token}\n")
    if path is None:
        print("add to the file named by MIGCTL_TOKENS_FILE (picked up without a restart):\n")
    else:
        print(f"added to {path} (picked up without a restart):\n")
    print(entry, end="")
    return 0


def _list(args: argparse.Namespace) -> int:
    principals = list_tokens(_tokens_file(args.file))
    if args.json:
        rows = [
            {
                "name": p.name,
                "role": str(p.role),
                "databases": None if p.databases is None else sorted(p.databases),
            }
            for p in principals
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(p.name) for p in principals), default=4)
    print(f"{'NAME':<{width}}  {'ROLE':<8}  DATABASES")
    for p in principals:
        scope = "(all)" if p.databases is None else ", ".join(sorted(p.databases))
        print(f"{p.name:<{width}}  {p.role!s:<8}  {scope}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    path = _tokens_file(args.file)
    if not revoke_token(path, args.name):
        names = ", ".join(p.name for p in list_tokens(path)) or "none"
        return _refuse(f"{path} has no token named {args.name!r} (it has: {names}).")
    print(f"revoked {args.name} in {path} (refused from the server's next request on)")
    return 0


def _tokens_file(given: Path | None) -> Path:
    path = normalized(given) if given else tokens_file_from_env()
    if path is None:
        raise ConfigError("No tokens file: pass --file PATH or set MIGCTL_TOKENS_FILE.")
    return path


def _refuse(message: str) -> int:
    print(f"migctl: {message}", file=sys.stderr)
    return EXIT_REFUSED
