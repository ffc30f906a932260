"""Settings.from_env(): the only reader of the environment; managed databases from MIGCTL_*."""

from __future__ import annotations

import configparser
import functools
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.errors import ConfigError
from service.secrets import Secret, mask_url, url_secrets, value_secrets

ENV_PREFIX = "MIGCTL_"
KNOWN_VARIABLES = frozenset(
    {
        "MIGCTL_DATA_DIR",
        "MIGCTL_DATABASES_FILE",
        "MIGCTL_DATABASE_URL",
        "MIGCTL_ALEMBIC_CONFIG",
        "MIGCTL_ALEMBIC_SECTION",
        "MIGCTL_ENVIRONMENT",
        "MIGCTL_BIND",
        "MIGCTL_WORKERS",
        "MIGCTL_THREADS",
        "MIGCTL_MAX_WAITERS",
        "MIGCTL_LOG_LEVEL",
        "MIGCTL_PREVIEW_CACHE_MB",
        "MIGCTL_SCRIPT_RESCAN_SECONDS",
        "MIGCTL_CONTROL_DATABASE_URL",
        "MIGCTL_CONTROL_DB_AUTO_UPGRADE",
        "MIGCTL_HEARTBEAT_SECONDS",
        "MIGCTL_LEASE_SECONDS",
        "MIGCTL_WORKER_POLL_SECONDS",
        "MIGCTL_SHUTDOWN_GRACE_SECONDS",
        "MIGCTL_JOB_START_TIMEOUT_SECONDS",
        "MIGCTL_EXPECT_WORKER",
        "MIGCTL_TOKENS_FILE",
        "MIGCTL_AUTH",
        "MIGCTL_DOCS_PUBLIC",
        "MIGCTL_MAX_BODY_BYTES",
        "MIGCTL_CORS_ORIGINS",
        "MIGCTL_RUNNER_TIMEOUT_SECONDS",
        "MIGCTL_LOG_FORMAT",
        "MIGCTL_WORKER_CONCURRENCY",
        # Chat and approvals
        "MIGCTL_WEBHOOKS_FILE",
        "MIGCTL_PUBLIC_URL",
        # The web console (/console).
        "MIGCTL_CONSOLE_SESSION_MINUTES",
        # Event streams (server-sent events) of the API processes.
        "MIGCTL_MAX_STREAMS",
        "MIGCTL_STREAM_SECONDS",
        "MIGCTL_STREAM_KEEPALIVE_SECONDS",
        # Read by the `migctl` client commands only; a server ignores them.
        "MIGCTL_URL",
        "MIGCTL_TOKEN",
        "MIGCTL_RUN_ID",
        # fleets, rollouts and metrics
        "MIGCTL_STATE_REFRESH_SECONDS",
        "MIGCTL_METRICS_PUBLIC",
    }
)
DATABASE_KEYS = frozenset(
    {
        "url",
        "url_env",
        "alembic_config",
        "alembic_section",
        "environment",
        "description",
        "env",
        "public_env",
        "allow_downgrade",
        "allow_stamp",
        "python",
        "migration_url",
        "migration_url_env",
        "lock",
        "require_approval",
        "approvals_required",
        "approval_ttl",
        # Production safety (README "Production safety").
        "lint",
        "lock_timeout",
        "statement_timeout",
        "labels",
    }
)
LINT_POLICIES = ("off", "warn", "block")
PRODUCTION_LOCK_TIMEOUT = "5s"
_DURATION = re.compile(r"^[0-9]{1,9}\s*(us|ms|s|min|h|d)?$")
LOCK_KINDS = ("advisory", "table")
PRODUCTION = "production"
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for it
DEFAULT_DATABASE_NAME = "default"
EXAMPLE_DATABASE_NAME = "example"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ManagedDatabase:
    """A database whose schema migctl controls, and the Alembic project that describes it."""

    name: str
    url: Secret
    alembic_config: Path
    alembic_section: str = "alembic"
    environment: str = ""
    description: str = ""
    env: Mapping[str, Secret] = field(default_factory=dict)
    # Names in `env` whose values are not secret (a schema name): shown as they are.
    public_env: frozenset[str] = frozenset()
    allow_downgrade: bool | None = None  # None: allowed unless environment is production
    allow_stamp: bool | None = None
    python: tuple[str, ...] = (sys.executable,)  # the interpreter (argv prefix) of its project
    migration_url: Secret | None = None  # a direct connection for jobs, when url is pooled
    lock: str = "advisory"  # or "table": a lease row, for a transaction pooler
    require_approval: bool | None = None  # None: required when environment is production
    approvals_required: int = 1  # distinct people, none of them the requester
    approval_ttl_seconds: float = 86_400.0  # an operation awaiting approval expires after it
    lint: str | None = None  # off | warn | block; None: block in production, else warn
    lock_timeout: str | None = None  # a PostgreSQL duration; None: 5s in production, else unset
    statement_timeout: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)  # free key = value tags

    @property
    def lint_policy(self) -> str:
        return self.lint or ("block" if self.environment == PRODUCTION else "warn")

    @property
    def effective_lock_timeout(self) -> str | None:
        """The lock_timeout each migration step runs with; "0" turns the default off."""
        if self.lock_timeout is not None:
            return None if self.lock_timeout.strip() == "0" else self.lock_timeout
        return PRODUCTION_LOCK_TIMEOUT if self.environment == PRODUCTION else None

    @property
    def job_url(self) -> Secret:
        """The URL jobs migrate through: migration_url when set, else url."""
        return self.migration_url or self.url

    def allows(self, action: str) -> bool:
        """The policy: downgrades and stamps are refused in production unless allowed."""
        explicit = {"downgrade": self.allow_downgrade, "stamp": self.allow_stamp}.get(action)
        if action not in ("downgrade", "stamp"):
            return True
        return explicit if explicit is not None else self.environment != PRODUCTION

    url_variables: tuple[str, ...] = ()  # environment variables its URLs came from

    @property
    def needs_approval(self) -> bool:
        """The policy: operations wait for approvers in production unless told otherwise."""
        if self.require_approval is not None:
            return self.require_approval
        return self.environment == PRODUCTION

    def secret_values(self) -> list[str]:
        """What must never be shown: the URLs' passwords and every env value not public."""
        env = [v.reveal() for name, v in self.env.items() if name not in self.public_env]
        urls = [self.url.reveal()] + ([self.migration_url.reveal()] if self.migration_url else [])
        found = [secret for url in urls for secret in url_secrets(url)]
        return found + [s for value in env for s in value_secrets(value)]

    @functools.cached_property
    def masked_url(self) -> str:  # once: parsing URLs adds up in lists of 1,000 databases
        return mask_url(self.url.reveal())

    @property
    def dialect(self) -> str:
        return self.url.reveal().split(":", 1)[0].split("+", 1)[0]

    @property
    def project_dir(self) -> Path:
        return self.alembic_config.parent


@dataclass(frozen=True)
class Settings:
    """Everything migctl is configured with; build it with `Settings.from_env()`."""

    databases: tuple[ManagedDatabase, ...]
    data_dir: Path = Path("var")
    source: str = "bundled example"
    bind: str = "127.0.0.1:8000"
    workers: int = 2
    threads: int = 4
    max_waiters: int | None = None  # None: half the threads
    log_level: str = "INFO"
    log_format: str = "auto"  # text at a terminal, JSON otherwise
    preview_cache_mb: int = 32
    script_rescan_seconds: float = 2.0
    control_database_url: Secret = field(default_factory=lambda: Secret("sqlite:///var/migctl.db"))
    control_db_auto_upgrade: bool = True
    heartbeat_seconds: float = 5.0
    lease_seconds: float = 30.0
    worker_poll_seconds: float = 1.0
    worker_concurrency: int = 1  # operations (of different databases) one worker runs at once
    shutdown_grace_seconds: float = 60.0
    job_start_timeout_seconds: float = 60.0
    # Readiness needs a live worker. `serve` sets it for its API processes when it runs one.
    expect_worker: bool = False
    tokens_file: Path | None = None
    auth_disabled: bool = False
    docs_public: bool = True
    max_body_bytes: int = 65536
    cors_origins: tuple[str, ...] = ()
    runner_timeout_seconds: float = 30.0
    # Fleets: how old a database's cached state may grow; /metrics without a token.
    state_refresh_seconds: float = 30.0
    metrics_public: bool = False
    metrics_dir: Path | None = None  # PROMETHEUS_MULTIPROC_DIR: multiprocess metrics
    # What project runners inherit: this environment without MIGCTL_* and the variables
    # that hold databases' URLs (url_env, migration_url_env).
    runner_environ: Mapping[str, str] = field(default_factory=dict)
    # Chat and approvals: webhook subscriptions (reloaded when the file changes), the
    # environment their secret_env / url_env name, and the base of links in messages.
    webhooks_file: Path | None = None
    webhooks_environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    public_url: str = ""
    # The web console: how long a sign-in lasts.
    console_session_minutes: int = 480
    # Server-sent event streams: each holds a thread for its whole life.
    max_streams: int | None = None  # None: a quarter of the threads (at least one)
    stream_seconds: float = 300.0  # then the stream ends; clients resume with Last-Event-ID
    stream_keepalive_seconds: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every MIGCTL_* variable; raise ConfigError naming the variable, file or key."""
        env = dict(os.environ if environ is None else environ)
        _reject_unknown_variables(env)
        data_dir = normalized(env.get("MIGCTL_DATA_DIR") or "var")
        databases, source = _load_databases(env, data_dir)
        return cls(
            databases=databases,
            data_dir=data_dir,
            source=source,
            bind=env.get("MIGCTL_BIND") or "127.0.0.1:8000",
            workers=_positive_int(env, "MIGCTL_WORKERS", default=max(2, os.cpu_count() or 1)),
            threads=_positive_int(env, "MIGCTL_THREADS", default=4),
            max_waiters=_count(env, "MIGCTL_MAX_WAITERS"),
            log_level=_log_level(env),
            log_format=_choice(env, "MIGCTL_LOG_FORMAT", ("auto", "text", "json"), "auto"),
            preview_cache_mb=_positive_int(env, "MIGCTL_PREVIEW_CACHE_MB", default=32),
            script_rescan_seconds=_seconds(env, "MIGCTL_SCRIPT_RESCAN_SECONDS", default=2.0),
            control_database_url=Secret(
                env.get("MIGCTL_CONTROL_DATABASE_URL") or f"sqlite:///{data_dir / 'migctl.db'}"
            ),
            control_db_auto_upgrade=_flag(env, "MIGCTL_CONTROL_DB_AUTO_UPGRADE", default=True),
            **_worker_timings(env),
            **_access(env),
            runner_timeout_seconds=_seconds(env, "MIGCTL_RUNNER_TIMEOUT_SECONDS", default=30.0),
            worker_concurrency=_positive_int(env, "MIGCTL_WORKER_CONCURRENCY", default=1),
            state_refresh_seconds=_seconds(env, "MIGCTL_STATE_REFRESH_SECONDS", default=30.0),
            metrics_public=_flag(env, "MIGCTL_METRICS_PUBLIC", default=False),
            metrics_dir=normalized(env[METRICS_DIR]) if env.get(METRICS_DIR) else None,
            runner_environ=_runner_environ(env, databases),
            **_chat(env),
            console_session_minutes=_positive_int(
                env, "MIGCTL_CONSOLE_SESSION_MINUTES", default=480
            ),
            **_streams(env),
        )

    def database(self, name: str) -> ManagedDatabase | None:
        return next((db for db in self.databases if db.name == name), None)

    @property
    def waiter_limit(self) -> int:
        """Long polls one process serves at once: a waiter holds a thread, and the others
        must stay free for probes and quick requests (0 with one thread: none waits)."""
        return self.threads // 2 if self.max_waiters is None else self.max_waiters

    @property
    def stream_limit(self) -> int:
        """Event streams one process serves at once, beside its long polls."""
        return max(1, self.threads // 4) if self.max_streams is None else self.max_streams

    def secret_values(self) -> list[str]:
        """Every secret of every database, and the control database's password."""
        found = url_secrets(self.control_database_url.reveal())
        return found + [value for db in self.databases for value in db.secret_values()]


def _runner_environ(
    env: Mapping[str, str], databases: tuple[ManagedDatabase, ...]
) -> dict[str, str]:
    hidden = {name for db in databases for name in db.url_variables}
    return {
        key: value
        for key, value in env.items()
        if not key.startswith(ENV_PREFIX) and key not in hidden
    }


def normalized(path: str | Path) -> Path:
    """`path` made absolute, without `.` and `..` parts, as migctl shows and uses it.

    Not resolved: a symlink stays a symlink (its name may be the one that is deployed), and
    only `name/..` pairs are dropped, as `os.path.normpath` does.
    """
    return Path(os.path.normpath(Path(path).absolute()))


def tokens_file_from_env(environ: Mapping[str, str] | None = None) -> Path | None:
    """MIGCTL_TOKENS_FILE alone, for `migctl token` (which needs no other setting)."""
    value = (os.environ if environ is None else environ).get("MIGCTL_TOKENS_FILE")
    return normalized(value) if value else None


def _reject_unknown_variables(env: Mapping[str, str]) -> None:
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in KNOWN_VARIABLES)
    if unknown:
        raise ConfigError(
            f"Unknown environment variable(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(KNOWN_VARIABLES))}.",
            keys=unknown,
        )


def _positive_int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{key} must be a positive whole number, not {raw!r}.", key=key)
    return int(raw)


def _count(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key)
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(f"{key} must be a whole number, not {raw!r}.", key=key)
    return int(raw)


def _seconds(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86_400:
        raise ConfigError(f"{key} must be a number of seconds, not {raw!r}.", key=key)
    return value


def _streams(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "max_streams": _count(env, "MIGCTL_MAX_STREAMS"),
        "stream_seconds": _seconds(env, "MIGCTL_STREAM_SECONDS", default=300.0),
        "stream_keepalive_seconds": _seconds(env, "MIGCTL_STREAM_KEEPALIVE_SECONDS", default=15.0),
    }


def _worker_timings(env: Mapping[str, str]) -> dict[str, Any]:
    timings = {
        "heartbeat_seconds": _seconds(env, "MIGCTL_HEARTBEAT_SECONDS", default=5.0),
        "lease_seconds": _seconds(env, "MIGCTL_LEASE_SECONDS", default=30.0),
        "worker_poll_seconds": _seconds(env, "MIGCTL_WORKER_POLL_SECONDS", default=1.0),
        "shutdown_grace_seconds": _seconds(env, "MIGCTL_SHUTDOWN_GRACE_SECONDS", default=60.0),
        "job_start_timeout_seconds": _seconds(
            env, "MIGCTL_JOB_START_TIMEOUT_SECONDS", default=60.0
        ),
        "expect_worker": _flag(env, "MIGCTL_EXPECT_WORKER", default=False),
    }
    if timings["lease_seconds"] <= 2 * timings["heartbeat_seconds"]:
        raise ConfigError(
            "MIGCTL_LEASE_SECONDS must be more than twice MIGCTL_HEARTBEAT_SECONDS, "
            "or a slow heartbeat would mark a live operation interrupted."
        )
    return timings


def _access(env: Mapping[str, str]) -> dict[str, Any]:
    auth = (env.get("MIGCTL_AUTH") or "enabled").lower()
    if auth not in ("enabled", "disabled"):
        raise ConfigError("MIGCTL_AUTH must be enabled or disabled.")
    tokens = env.get("MIGCTL_TOKENS_FILE")
    origins = [o.strip() for o in (env.get("MIGCTL_CORS_ORIGINS") or "").split(",") if o.strip()]
    return {
        "tokens_file": normalized(tokens) if tokens else None,
        "auth_disabled": auth == "disabled",
        "docs_public": _flag(env, "MIGCTL_DOCS_PUBLIC", default=True),
        "max_body_bytes": _positive_int(env, "MIGCTL_MAX_BODY_BYTES", default=65536),
        "cors_origins": tuple(origins),
    }


def _chat(env: Mapping[str, str]) -> dict[str, Any]:
    webhooks, public = env.get("MIGCTL_WEBHOOKS_FILE"), env.get("MIGCTL_PUBLIC_URL") or ""
    if public and not re.match(r"^https?://[^/\s]+(/\S*)?$", public):
        raise ConfigError(f"MIGCTL_PUBLIC_URL must be an http(s) URL, not {public!r}.")
    return {
        "webhooks_file": normalized(webhooks) if webhooks else None,
        "webhooks_environ": {k: v for k, v in env.items() if not k.startswith(ENV_PREFIX)},
        "public_url": public.rstrip("/"),
    }


def _flag(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = (env.get(key) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{key} must be true or false, not {raw!r}.", key=key)
    return raw in ("true", "1", "yes")


def _choice(env: Mapping[str, str], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = (env.get(key) or default).lower()
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, not {value!r}.", key=key)
    return value


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("MIGCTL_LOG_LEVEL") or "INFO").upper()
    if level not in _LOG_LEVELS:
        raise ConfigError(f"MIGCTL_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}.")
    return level


def _load_databases(
    env: Mapping[str, str], data_dir: Path
) -> tuple[tuple[ManagedDatabase, ...], str]:
    file_name, url = env.get("MIGCTL_DATABASES_FILE"), env.get("MIGCTL_DATABASE_URL")
    if file_name and url:
        raise ConfigError(
            "Set MIGCTL_DATABASES_FILE or MIGCTL_DATABASE_URL, not both: "
            "a databases file describes every database itself."
        )
    if file_name:
        path = normalized(file_name)
        return _databases_from_file(path, env), f"file {path}"
    if url:
        return (_database_from_variables(url, env),), "environment"
    if env.get("MIGCTL_ALEMBIC_CONFIG"):
        raise ConfigError("MIGCTL_ALEMBIC_CONFIG is set but MIGCTL_DATABASE_URL is missing.")
    return (_example_database(data_dir),), "bundled example"


def _database_from_variables(url: str, env: Mapping[str, str]) -> ManagedDatabase:
    ini = env.get("MIGCTL_ALEMBIC_CONFIG")
    if not ini:
        raise ConfigError("MIGCTL_DATABASE_URL is set but MIGCTL_ALEMBIC_CONFIG is missing.")
    section = env.get("MIGCTL_ALEMBIC_SECTION") or "alembic"
    where = "MIGCTL_ALEMBIC_CONFIG"
    return ManagedDatabase(
        name=DEFAULT_DATABASE_NAME,
        url=Secret(url),
        alembic_config=_checked_ini(normalized(ini), section, where),
        alembic_section=section,
        environment=env.get("MIGCTL_ENVIRONMENT") or "",
    )


def example_project_ini() -> Path:
    """alembic.ini of the bundled example: inside the wheel, or in the source checkout."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "examples", package_dir.parent / "examples"):
        ini = candidate / "shop" / "alembic.ini"
        if ini.is_file():
            return ini
    raise ConfigError("The bundled example project is missing from this installation.")


def _example_database(data_dir: Path) -> ManagedDatabase:
    return ManagedDatabase(
        name=EXAMPLE_DATABASE_NAME,
        url=Secret(f"sqlite:///{data_dir / 'example.db'}"),
        alembic_config=example_project_ini(),
        environment="example",
        description="The bundled example shop project on a SQLite file (no configuration given).",
    )


def _databases_from_file(path: Path, env: Mapping[str, str]) -> tuple[ManagedDatabase, ...]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (MIGCTL_DATABASES_FILE).") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from None
    extra = sorted(set(document) - {"databases"})
    if extra:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(extra)}.", keys=extra)
    tables = document.get("databases")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{path}: no [databases.<name>] table.")
    return tuple(
        _database_from_table(path, name, table, env) for name, table in sorted(tables.items())
    )


def _database_from_table(
    path: Path, name: str, table: Any, env: Mapping[str, str]
) -> ManagedDatabase:
    where = f"{path}: database {name!r}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: names are 1-63 letters, digits, '.', '_' or '-'.")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table ([databases.{name}]).")
    unknown = sorted(set(table) - DATABASE_KEYS)
    if unknown:
        allowed = ", ".join(sorted(DATABASE_KEYS))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {allowed}).")
    section = _string(table, "alembic_section", where) or "alembic"
    environment = _string(table, "environment", where)
    ini_value = _string(table, "alembic_config", where)
    if not ini_value:
        raise ConfigError(f"{where}: key 'alembic_config' is missing.")
    url, url_variable = _database_url(table, where, env, "url")
    migration_url, migration_variable = _database_url(table, where, env, "migration_url")
    variables = _env_table(table, where)
    return ManagedDatabase(
        name=name,
        url=Secret(url),
        alembic_config=_checked_ini(normalized(path.parent / ini_value), section, where),
        alembic_section=section,
        environment=environment,
        description=_string(table, "description", where),
        env=variables,
        public_env=_public_env(table, variables, where),
        allow_downgrade=_bool(table, "allow_downgrade", where),
        allow_stamp=_bool(table, "allow_stamp", where),
        python=_python(table, where, path.parent),
        migration_url=Secret(migration_url) if migration_url else None,
        lock=_lock(table, where),
        **_approval_policy(table, where),
        lint=_table_choice(table, "lint", LINT_POLICIES, where),
        lock_timeout=_duration(table, "lock_timeout", where),
        statement_timeout=_duration(table, "statement_timeout", where),
        labels=_labels(table, where),
        url_variables=tuple(v for v in (url_variable, migration_variable) if v),
    )


def _python(table: Mapping[str, Any], where: str, folder: Path) -> tuple[str, ...]:
    """The project's interpreter: a path (relative to the databases file) or an argv prefix."""
    value = table.get("python")
    if value is None:
        return (sys.executable,)
    if isinstance(value, str) and value:
        return (str((folder / value).absolute()) if "/" in value else value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigError(
        f"{where}: key 'python' is an interpreter's path or a non-empty list of strings (an "
        'argv prefix, e.g. ["/usr/bin/env", "PYTHONPATH=/srv/app", "/srv/app/.venv/bin/python"]).'
    )


def _approval_policy(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    count, ttl = table.get("approvals_required", 1), table.get("approval_ttl", 86_400)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10:
        raise ConfigError(f"{where}: key 'approvals_required' must be a whole number 1-10.")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 60 <= ttl <= 30 * 86_400:
        raise ConfigError(f"{where}: key 'approval_ttl' must be 60 to 2592000 seconds.")
    return {
        "require_approval": _bool(table, "require_approval", where),
        "approvals_required": count,
        "approval_ttl_seconds": float(ttl),
    }


def _labels(table: Mapping[str, Any], where: str) -> dict[str, str]:
    raw = table.get("labels", {})
    valid = isinstance(raw, dict) and all(
        isinstance(v, str) and _NAME.match(k) for k, v in raw.items()
    )
    if not valid:
        raise ConfigError(
            f"{where}: key 'labels' must be a table of strings whose keys are 1-63 letters, "
            "digits, '.', '_' or '-' (e.g. labels = { region = \"eu\", tier = \"gold\" })."
        )
    return dict(raw)


def _lock(table: Mapping[str, Any], where: str) -> str:
    kind = _string(table, "lock", where) or "advisory"
    if kind not in LOCK_KINDS:
        raise ConfigError(f"{where}: key 'lock' is one of {', '.join(LOCK_KINDS)}, not {kind!r}.")
    return kind


def _string(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: key {key!r} must be a string.")
    return value


def _table_choice(
    table: Mapping[str, Any], key: str, choices: tuple[str, ...], where: str
) -> str | None:
    value = _string(table, key, where) or None
    if value is not None and value not in choices:
        raise ConfigError(f"{where}: key {key!r} is one of {', '.join(choices)}, not {value!r}.")
    return value


def _duration(table: Mapping[str, Any], key: str, where: str) -> str | None:
    """A PostgreSQL duration ("5s", "500ms", "2min"; "0" for none): it goes into a SET."""
    value = _string(table, key, where) or None
    if value is not None and not _DURATION.match(value):
        raise ConfigError(f'{where}: key {key!r} is a duration such as "5s" or "500ms".')
    return value


def _bool(table: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = table.get(key)
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{where}: key {key!r} must be true or false.")
    return value


def _database_url(
    table: Mapping[str, Any], where: str, env: Mapping[str, str], key: str
) -> tuple[str, str | None]:
    """`key` or `key`_env's variable; (value, the variable it came from). Only `url` is required."""
    url, url_env = _string(table, key, where), _string(table, f"{key}_env", where)
    if url and url_env:
        raise ConfigError(f"{where}: set '{key}' or '{key}_env', not both.")
    if url_env:
        if not env.get(url_env):
            raise ConfigError(f"{where}: key '{key}_env' names {url_env}, which is not set.")
        return env[url_env], url_env
    if not url and key == "url":
        raise ConfigError(f"{where}: key 'url' (or 'url_env') is missing.")
    return url, None


def _env_table(table: Mapping[str, Any], where: str) -> dict[str, Secret]:
    raw = table.get("env", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: key 'env' must be a table of strings.")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ConfigError(f"{where}: env variable {key!r} must be a string.")
    return {key: Secret(value) for key, value in raw.items()}


def _public_env(table: Mapping[str, Any], env: Mapping[str, Secret], where: str) -> frozenset[str]:
    """Env names declared not secret; one that env does not set is a typo, refused at start."""
    raw = table.get("public_env", [])
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise ConfigError(f"{where}: key 'public_env' must be a list of env variable names.")
    unknown = sorted(set(raw) - set(env))
    if unknown:
        raise ConfigError(f"{where}: public_env names {unknown[0]!r}, which env does not set.")
    return frozenset(raw)


def _checked_ini(ini: Path, section: str, where: str) -> Path:
    """The ini path, once it is known to exist and to give `script_location` in `section`."""
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent)})
    try:
        if not parser.read(ini, encoding="utf-8"):
            raise ConfigError(f"{where}: alembic_config {ini} does not exist.")
    except configparser.Error as exc:
        raise ConfigError(f"{where}: alembic_config {ini} cannot be parsed: {exc}") from None
    if not parser.has_section(section):
        raise ConfigError(f"{where}: {ini} has no [{section}] section (alembic_section).")
    if not parser.get(section, "script_location", raw=True, fallback=""):
        raise ConfigError(f"{where}: {ini} [{section}] has no script_location.")
    return ini
