"""migctl: Alembic migrations of many databases behind a REST API.

Run `migctl COMMAND --help` for the options of each command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from service import __version__
from service.cli_tokens import add_token_commands
from service.errors import ConfigError, MigctlError
from service.secrets import mask_url
from service.settings import Settings

if TYPE_CHECKING:
    from service.services.control import SchemaChange

DEFAULT_SPEC_PATH = Path("openapi/openapi.json")
DEFAULT_README_PATH = Path("README.md")
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.run is _serve:
        _fix_hash_seed(sys.argv[1:] if argv is None else list(argv))
    try:
        result: int = args.run(args)
    except ConfigError as exc:
        print(f"migctl: configuration error: {exc.detail}", file=sys.stderr)
        return EXIT_CONFIG
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="migctl", description=__doc__, formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"migctl {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND", title="commands")
    serve = commands.add_parser("serve", help="run the HTTP API under gunicorn")
    serve.add_argument("--bind", help="HOST:PORT (default MIGCTL_BIND or 127.0.0.1:8000)")
    serve.add_argument("--workers", type=int, help="processes (default MIGCTL_WORKERS)")
    serve.add_argument("--threads", type=int, help="threads per process (default MIGCTL_THREADS)")
    serve.add_argument(
        "--no-worker", action="store_true", help="serve the API only (run `migctl worker` apart)"
    )
    serve.set_defaults(run=_serve)
    worker = commands.add_parser("worker", help="run queued operations")
    worker.set_defaults(run=_worker)
    add_token_commands(commands)
    control_db = commands.add_parser("control-db", help="migctl's own database: upgrade")
    control_db_commands = control_db.add_subparsers(
        required=True, metavar="ACTION", title="actions"
    )
    upgrade = control_db_commands.add_parser("upgrade", help="apply the control schema")
    upgrade.set_defaults(run=_control_db_upgrade)
    check = commands.add_parser("check-config", help="validate the configuration and projects")
    check.add_argument("--connect", action="store_true", help="also read each database's state")
    check.set_defaults(run=_check_config)
    _add_generated_files(commands)
    return parser


class _Help(argparse.HelpFormatter):
    """Room for the longest command name, so that each command fits on one line."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)
        # argparse measures sub-commands without their extra indent: check-config would wrap.
        self._action_max_length = 20


def _add_generated_files(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    openapi = commands.add_parser("openapi", help="the OpenAPI description: write")
    openapi_commands = openapi.add_subparsers(required=True, metavar="ACTION", title="actions")
    write = openapi_commands.add_parser("write", help="write the spec as JSON")
    write.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=DEFAULT_SPEC_PATH,
        help=f"(default {DEFAULT_SPEC_PATH})",
    )
    write.set_defaults(run=_openapi_write)
    docs = commands.add_parser("docs", help="generated documentation: write")
    docs_commands = docs.add_subparsers(required=True, metavar="ACTION", title="actions")
    write = docs_commands.add_parser(
        "write", help="write the OpenAPI spec and the README's error tables"
    )
    write.add_argument(
        "--spec",
        type=Path,
        default=DEFAULT_SPEC_PATH,
        help=f"the spec (default {DEFAULT_SPEC_PATH})",
    )
    write.add_argument(
        "--readme",
        type=Path,
        default=DEFAULT_README_PATH,
        help=f"the README, between its errors:start and errors:end markers "
        f"(default {DEFAULT_README_PATH})",
    )
    write.set_defaults(run=_docs_write)


def _fix_hash_seed(argv: list[str]) -> None:
    """Re-exec with PYTHONHASHSEED=0 so that previews are the same in every process.

    Alembic picks which version row to UPDATE when it unmerges a merge point by iterating a
    set of strings: the text of such a preview depends on the hash seed. One fixed seed makes
    it (and its sha256 and ETag) the same across workers, restarts and hosts, and equal to
    `PYTHONHASHSEED=0 alembic ... --sql`. Hash flooding stays bounded by gunicorn's request
    line and header limits.
    """
    # A process setting, not configuration: the one read of os.environ outside settings.py.
    if os.environ.get("PYTHONHASHSEED") != "0":
        environ = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, "-m", "service.cli", *argv], environ)


def _serve(args: argparse.Namespace) -> int:
    from service.api.server import serve

    settings = Settings.from_env()
    _configure_logging(settings.log_level)
    check_exposure(settings, args.bind or settings.bind)
    _prepare_control_database(settings)
    overrides = {"bind": args.bind, "workers": args.workers, "threads": args.threads}
    worker = None if args.no_worker else _start_worker_process()
    try:
        serve(settings, **{key: value for key, value in overrides.items() if value is not None})
    finally:
        if worker is not None:
            worker.terminate()  # it finishes its running operation within the grace period
            worker.wait()
    return 0


LOOPBACK = ("127.0.0.1", "localhost", "[::1]", "::1")


def check_exposure(settings: Settings, bind: str) -> None:
    """Without tokens, serve on loopback only, unless MIGCTL_AUTH=disabled says otherwise."""
    logger = logging.getLogger("service.cli")
    if settings.tokens_file is not None:
        return
    host = bind.rsplit(":", 1)[0] if ":" in bind else bind
    if settings.auth_disabled:
        logger.warning("MIGCTL_AUTH=disabled: anyone who reaches %s may change databases", bind)
        return
    if host not in LOOPBACK:
        raise ConfigError(
            f"No MIGCTL_TOKENS_FILE, and {bind} is not a loopback address: migctl will not "
            "serve unauthenticated requests to the network. Create tokens (migctl token "
            "create) or set MIGCTL_AUTH=disabled behind an authenticating gateway."
        )
    logger.warning("no MIGCTL_TOKENS_FILE: every caller on %s acts as 'anonymous' (admin)", bind)


def _start_worker_process() -> subprocess.Popen[bytes]:
    """The quick start's worker: `migctl worker` beside gunicorn, stopped with it."""
    return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"])


def _worker(_args: argparse.Namespace) -> int:
    from service.worker.loop import run_worker

    settings = Settings.from_env()
    _configure_logging(settings.log_level)
    _prepare_control_database(settings)
    run_worker(settings)
    return 0


def _control_db_upgrade(_args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _configure_logging(settings.log_level)
    change = _upgrade_control_schema(settings)
    print(f"{change} ({mask_url(settings.control_database_url.reveal())})")
    return 0


def _prepare_control_database(settings: Settings) -> None:
    if settings.control_db_auto_upgrade:
        _upgrade_control_schema(settings)


def _upgrade_control_schema(settings: Settings) -> SchemaChange:
    from service.services.control import upgrade_control_schema
    from service.services.wiring import build_services

    services = build_services(settings)
    try:
        return upgrade_control_schema(services.store)
    finally:
        services.close()


def _check_config(args: argparse.Namespace) -> int:
    from service.services import databases
    from service.services.wiring import build_services

    settings = Settings.from_env()
    services = build_services(settings)
    registry = services.registry
    print(f"databases from {settings.source}:")
    failures = 0
    for managed in registry.all():
        database = managed.database
        try:
            managed.graph()
            state = databases.database_status(registry, database.name).state if args.connect else ""
            verdict = f"ok {state}".rstrip()
        except MigctlError as exc:
            failures += 1
            verdict = f"FAILED {exc.code}: {exc.detail}"
        print(f"  {database.name}: {database.masked_url} ({database.alembic_config}) {verdict}")
    services.close()
    return 1 if failures else 0


def _openapi_write(args: argparse.Namespace) -> int:
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(render_openapi(), encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


def _docs_write(args: argparse.Namespace) -> int:
    from service.api import error_table

    _openapi_write(argparse.Namespace(path=args.spec))
    readme = args.readme.read_text(encoding="utf-8")
    args.readme.write_text(error_table.rewrite(readme), encoding="utf-8")
    print(f"wrote the error tables in {args.readme}")
    return 0


def render_openapi() -> str:
    """The spec the app serves, as stable JSON (it does not depend on the configuration)."""
    from service.api.app import create_app

    response = create_app(Settings(databases=())).test_client().get("/openapi.json")
    spec = cast(dict[str, Any], response.get_json())
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    )
    if level != "DEBUG":  # Alembic's plugin and context lines say nothing an operator needs
        logging.getLogger("alembic").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
