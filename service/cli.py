"""migctl: Alembic migrations of many databases behind a REST API.

Run `migctl COMMAND --help` for the options of each command."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from service import __version__, logcontext, logformat
from service.cli_tokens import add_token_commands
from service.client.parser import add_client_commands
from service.errors import ConfigError, MigctlError
from service.secrets import mask_url
from service.settings import KNOWN_VARIABLES, METRICS_DIR, Settings

if TYPE_CHECKING:
    from service.services.control import SchemaChange

DEFAULT_SPEC_PATH = Path("openapi/openapi.json")
DEFAULT_README_PATH = Path("README.md")
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    worker.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="operations of different databases run at once (MIGCTL_WORKER_CONCURRENCY)",
    )
    worker.add_argument(
        "--supervised",
        action="store_true",
        help="run it in a child process, restarted whenever it exits (how serve runs it)",
    )
    worker.set_defaults(run=_worker)
    add_token_commands(commands)
    add_client_commands(commands, known=KNOWN_VARIABLES)
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


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    created = settings.metrics_dir is None
    settings = _share_metrics_directory(settings)  # before prometheus_client is imported
    try:
        return _serve_with(args, settings)
    finally:
        if created and settings.metrics_dir is not None:
            shutil.rmtree(settings.metrics_dir, ignore_errors=True)


def _share_metrics_directory(settings: Settings) -> Settings:
    """PROMETHEUS_MULTIPROC_DIR for every process serve starts (its gunicorn workers and its
    worker): the one given, or a fresh one; emptied first, as multiprocess mode requires."""
    directory = settings.metrics_dir or Path(tempfile.mkdtemp(prefix="migctl-metrics-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[METRICS_DIR] = str(directory)
    return dataclasses.replace(settings, metrics_dir=directory)


def _serve_with(args: argparse.Namespace, settings: Settings) -> int:
    from service.api.server import serve

    _configure_logging(settings)
    check_exposure(settings, args.bind or settings.bind)
    _prepare_control_database(settings)
    overrides = {"bind": args.bind, "workers": args.workers, "threads": args.threads}
    options = {key: value for key, value in overrides.items() if value is not None}
    if args.no_worker:
        serve(settings, **options)
        return 0
    from service.worker.supervisor import start_supervisor, stop_supervisor

    supervisor = start_supervisor()
    try:  # its API processes are unready while no worker heartbeats
        serve(dataclasses.replace(settings, expect_worker=True), **options)
    finally:
        stop_supervisor(supervisor)
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


def _worker(args: argparse.Namespace) -> int:
    from service.worker.loop import run_worker
    from service.worker.supervisor import supervise

    settings = Settings.from_env()
    _configure_logging(settings)
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1.")
    if args.supervised:
        passed = () if args.concurrency is None else ("--concurrency", str(args.concurrency))
        return supervise(settings, passed)
    _prepare_control_database(settings, wait=True)
    run_worker(settings, args.concurrency)
    return 0


def _control_db_upgrade(_args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    _configure_logging(settings)
    change = _upgrade_control_schema(settings)
    print(f"{change} ({mask_url(settings.control_database_url.reveal())})")
    return 0


def _prepare_control_database(settings: Settings, wait: bool = False) -> None:
    """Apply the control schema; with `wait`, through an outage (a worker restarted while the
    control database is down starts when it returns, not at its next restart)."""
    if not settings.control_db_auto_upgrade:
        return
    if not wait:
        _upgrade_control_schema(settings)
        return
    from service.retrying import Backoff, Outage, until_done
    from service.services.control import UNAVAILABLE

    outage = Outage(logging.getLogger("service.cli"), "worker start: control database")
    upgrade = functools.partial(_upgrade_control_schema, settings)
    until_done(upgrade, UNAVAILABLE, threading.Event(), outage, Backoff(first=0.5, cap=15.0))


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
            runtime = databases.project_runtime(registry, database.name)
            managed.graph()
            state = databases.database_status(registry, database.name).state if args.connect else ""
            verdict = f"ok {state}".rstrip()
        except MigctlError as exc:
            failures += 1
            runtime, verdict = None, f"FAILED {exc.code}: {managed.redactor.redact(exc.detail)}"
        print(f"  {database.name}: {database.masked_url} ({database.alembic_config}) {verdict}")
        if runtime is not None:
            print(
                f"    runs in {runtime.interpreter}: Python {runtime.python}, "
                f"alembic {runtime.alembic}, SQLAlchemy {runtime.sqlalchemy}"
            )
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


def _configure_logging(settings: Settings) -> None:
    from service.services.redaction import log_redaction

    level = settings.log_level
    logging.basicConfig(level=level)
    handlers = logging.getLogger().handlers
    logformat.apply(handlers, settings.log_format)
    logcontext.attach(handlers)
    log_redaction(settings)
    if level != "DEBUG":  # Alembic's plugin and context lines say nothing an operator needs
        logging.getLogger("alembic").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
