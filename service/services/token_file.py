"""Edits of the tokens file (add, list, revoke) that keep its comments and formatting.

Each edit holds a lock on the file's folder, checks that the new text still loads as a tokens
file, and replaces the file atomically (a temporary file beside it, fsync, rename), keeping
its permissions: a running server reads either the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
import tomlkit.items

from service.errors import ConfigError
from service.services.access import Principal, Role
from service.services.tokens import parse_tokens, token_table

NEW_FILE_HEADER = (
    "# migctl API tokens: the SHA-256 of each token, never the token itself.\n"
    "# Edited by `migctl token create --file` and `migctl token revoke`; comments are kept.\n"
)


def list_tokens(path: Path) -> list[Principal]:
    """Every token's name, role and databases, by name (never its hash)."""
    return [principal for _, principal in parse_tokens(_read(path), path)]


def add_token(
    path: Path, name: str, role: Role, databases: list[str], digest: str, *, replace: bool
) -> bool:
    """Add (or with `replace`, overwrite) the entry `name`; False if it exists already."""
    with _locked(path.parent):
        text = _read(path) if path.exists() else NEW_FILE_HEADER
        document = _document(text, path)
        tokens, entry = _tokens_table(document), token_table(role, databases, digest)
        if name not in tokens:
            tokens.add(name, entry)
        elif replace:
            _overwrite(tokens[name], entry)
        else:
            return False
        _replace(path, tomlkit.dumps(document))
    return True


def revoke_token(path: Path, name: str) -> bool:
    """Remove the entry `name`; False if the file has no such entry."""
    with _locked(path.parent):
        document = _document(_read(path), path)
        tokens = document.get("tokens")
        if not isinstance(tokens, tomlkit.items.Table) or name not in tokens:
            return False
        _remove_keeping_comments(document, tokens, name)
        _replace(path, tomlkit.dumps(document))
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read (tokens file): {exc}") from None


def _document(text: str, path: Path) -> tomlkit.TOMLDocument:
    parse_tokens(text, path)  # refuse to edit a file the server itself would refuse
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from None


def _tokens_table(document: tomlkit.TOMLDocument) -> tomlkit.items.Table:
    tokens = document.get("tokens")
    if not isinstance(tokens, tomlkit.items.Table):
        tokens = tomlkit.table(is_super_table=True)
        document.add("tokens", tokens)
    return tokens


def _overwrite(existing: Any, entry: tomlkit.items.Table) -> None:
    """Set the entry's keys in place, so that its comments (and the next table's) stay."""
    for key in ("role", "databases", "sha256"):
        if key in entry:
            existing[key] = entry[key]
        elif key in existing:
            del existing[key]


def _remove_keeping_comments(
    document: tomlkit.TOMLDocument, tokens: tomlkit.items.Table, name: str
) -> None:
    """Delete the entry `name` with the comment lines right above its header; keep the
    comments after its last key, which are about the next entry (tomlkit files comments under
    the entry above them): they go to the entry before it, or above the first entry."""
    body = tokens.value.body
    index = next(i for i, (key, _) in enumerate(body) if key is not None and key.key == name)
    removed = body[index][1]
    trailing = _trailing_trivia(removed) if isinstance(removed, tomlkit.items.Table) else []
    del tokens[name]
    previous = body[index - 1][1] if index else None
    if isinstance(previous, tomlkit.items.Table):
        items = previous.value.body  # appended to and cut at the end: its keys keep places
        while items and isinstance(items[-1][1], tomlkit.items.Comment):
            items.pop()  # the removed entry's own comment
        if items and isinstance(items[-1][1], tomlkit.items.Whitespace):
            trailing = _without_leading_blank_lines(trailing)
        items.extend(trailing)
    else:  # only dumped from now on, so the document's key index may go stale
        trailing = _without_leading_blank_lines(trailing)
        where = next(i for i, (key, _) in enumerate(document.body) if key == "tokens")
        document.body[where:where] = trailing


def _without_leading_blank_lines(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    while items and isinstance(items[0][1], tomlkit.items.Whitespace):
        items = items[1:]
    return items


def _trailing_trivia(table: tomlkit.items.Table) -> list[tuple[Any, Any]]:
    items = table.value.body
    keep = len(items)
    while keep and items[keep - 1][0] is None:
        keep -= 1
    return items[keep:]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise edits by several `migctl token` commands at once (an flock on the folder)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _replace(path: Path, text: str) -> None:
    parse_tokens(text, path)  # never write a file that would lock everyone out by mistake
    existing = os.stat(path) if path.exists() else None
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        _copy_ownership(existing, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _copy_ownership(existing: os.stat_result | None, temporary: str) -> None:
    if existing is None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as any new file: mkstemp's is 0600
        return
    os.chmod(temporary, stat.S_IMODE(existing.st_mode))
    with contextlib.suppress(PermissionError):  # only root may give a file away
        os.chown(temporary, existing.st_uid, existing.st_gid)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
