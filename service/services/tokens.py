"""API tokens from MIGCTL_TOKENS_FILE: SHA-256 hashes only, reloaded when the file changes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import tomllib
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.items

from service.errors import AuthUnavailableError, ConfigError
from service.secrets import TOKEN_PREFIX
from service.services.access import Principal, Role
from service.services.redaction import learn_token

logger = logging.getLogger(__name__)
_KEYS = frozenset({"role", "databases", "sha256"})


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_entry(name: str, role: Role, databases: list[str], token: str) -> str:
    """The TOML table to add to the tokens file for `token` (which is not in it)."""
    tokens = tomlkit.table(is_super_table=True)
    tokens.add(name, token_table(role, databases, token_hash(token)))
    return tomlkit.dumps({"tokens": tokens})


def token_table(role: Role, databases: list[str], digest: str) -> tomlkit.items.Table:
    """One token's entry: its role, its databases (every one when empty) and its hash."""
    table = tomlkit.table()
    table.add("role", str(role))
    if databases:
        table.add("databases", list(databases))
    table.add("sha256", digest)
    return table


class TokenFile:
    """Verifies bearer tokens against the file; a changed file is read again, an invalid one
    refuses every token until it is fixed (fail closed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stat: tuple[int, int, int] | None = None
        self._entries: list[tuple[str, Principal]] = []
        self._unreadable = False
        self.load()  # a bad file stops migctl at start

    def load(self) -> None:
        entries = _parse(self.path)
        self._entries, self._stat, self._unreadable = entries, _stat(self.path), False

    def principals(self) -> list[Principal]:
        """Every token's principal as the file says now (none while it does not parse)."""
        self._reload_if_changed()
        return [] if self._unreadable else [principal for _, principal in self._entries]

    def verify(self, token: str) -> Principal | None:
        """The token's principal, None for an unknown token; AuthUnavailableError while the
        file does not parse (every token is refused, and the caller is told why)."""
        self._reload_if_changed()
        if self._unreadable:
            raise AuthUnavailableError(
                "The server's tokens file cannot be read, so no token can be checked; "
                "its operator must fix it (the server log says what is wrong)."
            )
        digest = token_hash(token)
        found = None
        for expected, principal in self._entries:  # compare with all: constant time per entry
            if hmac.compare_digest(digest, expected):
                found = principal
        if found is not None:
            learn_token(token)
        return found

    def principal_for_digest(self, digest: str) -> Principal | None:
        """The principal whose token hashes to `digest` (a console session's), None once
        the token is revoked or while the file does not parse."""
        self._reload_if_changed()
        if self._unreadable:
            return None
        return next((p for expected, p in self._entries if expected == digest), None)

    def _reload_if_changed(self) -> None:
        stat = _stat(self.path)
        if stat == self._stat:
            return
        with self._lock:
            if stat == self._stat:
                return
            try:
                self.load()
                logger.info("tokens file reloaded: %d tokens", len(self._entries))
            except ConfigError as exc:
                self._entries, self._stat, self._unreadable = [], stat, True
                logger.error("tokens file refused, every token is rejected: %s", exc.detail)


def _stat(path: Path) -> tuple[int, int, int]:
    try:
        status = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def _parse(path: Path) -> list[tuple[str, Principal]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML (MIGCTL_TOKENS_FILE): {exc}") from None
    return parse_tokens(text, path)


def parse_tokens(text: str, path: Path) -> list[tuple[str, Principal]]:
    """(sha256, principal) of every entry of a tokens file's text; ConfigError naming `path`."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: cannot be read as TOML (MIGCTL_TOKENS_FILE): {exc}") from None
    tables = document.get("tokens", {})  # no [tokens.*] at all: a file that admits no one
    if set(document) - {"tokens"} or not isinstance(tables, dict):
        raise ConfigError(f"{path}: expected [tokens.<name>] tables only.")
    return [_entry(path, name, table) for name, table in sorted(tables.items())]


def _entry(path: Path, name: str, table: Any) -> tuple[str, Principal]:
    where = f"{path}: token {name!r}"
    if not isinstance(table, dict) or set(table) - _KEYS:
        raise ConfigError(f"{where}: keys are {', '.join(sorted(_KEYS))}.")
    digest = table.get("sha256", "")
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise ConfigError(f"{where}: 'sha256' must be the 64 hex digits of the token's hash.")
    try:
        role = Role(table.get("role", ""))
    except ValueError:
        raise ConfigError(f"{where}: 'role' is viewer, operator or admin.") from None
    databases = table.get("databases")
    if databases is not None and not (
        isinstance(databases, list) and all(isinstance(d, str) for d in databases)
    ):
        raise ConfigError(f"{where}: 'databases' is a list of database names.")
    scope = None if databases is None else frozenset(databases)
    return digest.lower(), Principal(name, role, scope)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)
