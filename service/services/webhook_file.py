"""The webhooks file (MIGCTL_WEBHOOKS_FILE): subscriptions, read again whenever it changes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import threading
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from service.errors import ConfigError
from service.secrets import Secret

logger = logging.getLogger(__name__)
FORMATS = ("standard", "slack", "teams", "discord")
KEYS = frozenset(
    {
        "url",
        "url_env",
        "secret_env",
        "events",
        "databases",
        "format",
        "allow_private",
        "timeout",
        "max_attempts",
        "backoff_seconds",
    }
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Webhook:
    """One subscription: where to post which events, in which format, signed with what."""

    name: str
    url: Secret  # its path or query often is the credential (Slack, Discord, Teams)
    secret: Secret  # whsec_<base64>, the Standard Webhooks signing key
    events: tuple[str, ...] = ("*",)  # glob patterns: operation.*, approval.requested
    databases: frozenset[str] | None = None  # None: every database
    format: str = "standard"
    allow_private: bool = False  # loopback and private addresses are refused unless true
    timeout: float = 10.0
    max_attempts: int = 10
    backoff_seconds: float = 5.0  # the first retry's delay; doubled each time, with jitter

    @property
    def masked_url(self) -> str:
        """Scheme and host only: the rest may hold the credential."""
        parsed = urllib.parse.urlsplit(self.url.reveal())
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        rest = "/***" if parsed.path.strip("/") or parsed.query else ""
        return f"{parsed.scheme}://{host}{port}{rest}"

    @property
    def url_sha256(self) -> str:
        return hashlib.sha256(self.url.reveal().encode()).hexdigest()

    def wants(self, event_type: str, database: str | None) -> bool:
        if self.databases is not None and database not in self.databases:
            return False
        return any(fnmatchcase(event_type, pattern) for pattern in self.events)

    def secret_bytes(self) -> bytes:
        return base64.b64decode(self.secret.reveal().removeprefix("whsec_"))


class WebhooksFile:
    """The subscriptions of the file; a changed file is read again, a broken one keeps the
    last good subscriptions (events keep flowing) and says so in the log."""

    def __init__(self, path: Path, environ: Mapping[str, str]) -> None:
        self.path, self.environ = path, environ
        self._lock = threading.Lock()
        self._stat = _stat(path)
        self._hooks, self._slack = parse_file(path, environ)  # a bad file stops migctl

    def webhooks(self) -> tuple[Webhook, ...]:
        self._reload_if_changed()
        return self._hooks

    def slack(self) -> SlackApp | None:
        """The Slack app whose buttons approve, when the file has a [slack] table."""
        self._reload_if_changed()
        return self._slack

    def _reload_if_changed(self) -> None:
        stat = _stat(self.path)
        if stat != self._stat:
            with self._lock:
                if stat != self._stat:
                    self._reload(stat)

    def get(self, name: str) -> Webhook | None:
        return next((hook for hook in self.webhooks() if hook.name == name), None)

    def _reload(self, stat: tuple[int, int, int]) -> None:
        self._stat = stat
        try:
            self._hooks, self._slack = parse_file(self.path, self.environ)
            logger.info("webhooks file reloaded: %d webhooks", len(self._hooks))
        except ConfigError as exc:
            logger.error("webhooks file refused, the previous one stays: %s", exc.detail)


def _stat(path: Path) -> tuple[int, int, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def parse_file(
    path: Path, environ: Mapping[str, str]
) -> tuple[tuple[Webhook, ...], SlackApp | None]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (MIGCTL_WEBHOOKS_FILE).") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from None
    extra = sorted(set(document) - {"webhooks", "slack"})
    tables = document.get("webhooks", {})
    if extra or not isinstance(tables, dict):
        raise ConfigError(f"{path}: only [webhooks.<name>] and [slack] tables are allowed.")
    hooks = tuple(_webhook(f"{path}: webhook {n!r}", n, t, environ) for n, t in tables.items())
    slack = document.get("slack")
    return hooks, None if slack is None else _slack(f"{path}: [slack]", slack, environ)


@dataclass(frozen=True)
class SlackApp:
    """A Slack app's interactivity: its signing secret, and which Slack users approve as whom."""

    signing_secret: Secret
    approvers: Mapping[str, str]  # Slack user id -> the person recorded as actor


def _slack(where: str, table: Any, environ: Mapping[str, str]) -> SlackApp:
    if not isinstance(table, dict) or set(table) - {"signing_secret_env", "approvers"}:
        raise ConfigError(f"{where}: keys are signing_secret_env and approvers.")
    variable = table.get("signing_secret_env")
    secret = environ.get(str(variable)) if variable else None
    if not secret:
        raise ConfigError(f"{where}: signing_secret_env must name a set variable.")
    approvers = table.get("approvers", {})
    if not isinstance(approvers, dict) or not all(
        isinstance(v, str) and _NAME.match(v) for v in approvers.values()
    ):
        raise ConfigError(f"{where}: approvers maps Slack user ids to names (1-63 characters).")
    return SlackApp(Secret(secret), dict(approvers))


def _webhook(where: str, name: str, table: Any, environ: Mapping[str, str]) -> Webhook:
    if not _NAME.match(name) or not isinstance(table, dict):
        raise ConfigError(f"{where}: a [webhooks.<name>] table, names of 1-63 letters or digits.")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(KEYS))})."
        )
    fmt = table.get("format", "standard")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: format is one of {', '.join(FORMATS)}, not {fmt!r}.")
    databases = _strings(where, table, "databases", None)
    return Webhook(
        name=name,
        url=Secret(_url(where, table, environ)),
        secret=Secret(_secret(where, table, environ)),
        events=tuple(_strings(where, table, "events", ["*"]) or ()),
        databases=None if databases is None else frozenset(databases),
        format=fmt,
        allow_private=_typed(where, table, "allow_private", bool, False),
        timeout=float(_typed(where, table, "timeout", (int, float), 10.0)),
        max_attempts=int(_typed(where, table, "max_attempts", int, 10)),
        backoff_seconds=float(_typed(where, table, "backoff_seconds", (int, float), 5.0)),
    )


def _typed(where: str, table: Mapping[str, Any], key: str, kind: Any, default: Any) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}: key {key!r} has the wrong type.")
    if kind is not bool and not 0 < value <= 1000:
        raise ConfigError(f"{where}: key {key!r} must be more than 0 and at most 1000.")
    return value


def _strings(where: str, table: Mapping[str, Any], key: str, default: Any) -> list[str] | None:
    value = table.get(key, default)
    if value is not None and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        raise ConfigError(f"{where}: key {key!r} must be a list of strings.")
    return value


def _url(where: str, table: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    url, variable = table.get("url"), table.get("url_env")
    if variable:
        url = environ.get(str(variable))
        if not url:
            raise ConfigError(f"{where}: url_env names {variable}, which is not set.")
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ConfigError(f"{where}: key 'url' (or 'url_env') must give an http(s) URL.")
    if not urllib.parse.urlsplit(url).hostname:
        raise ConfigError(f"{where}: its URL has no host.")
    return url


def _secret(where: str, table: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    variable = table.get("secret_env")
    value = environ.get(str(variable)) if variable else None
    if not value:
        raise ConfigError(f"{where}: key 'secret_env' must name a set variable (whsec_...).")
    try:
        raw = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not value.startswith("whsec_") or not 24 <= len(raw) <= 64:
        raise ConfigError(f"{where}: {variable} must be whsec_ and 24-64 random bytes in base64.")
    return value
