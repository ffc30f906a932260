"""Console sign-in: a token exchanged once for a server-side session, and sign-out."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from service.services.access import Principal
from service.services.tokens import TokenFile, token_hash
from service.store import console_sessions
from service.store.console_sessions import SessionRecord
from service.store.db import ControlStore, utcnow


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in person: `key` goes in the cookie, `csrf_token` in every form."""

    key: str
    principal: Principal
    csrf_token: str


def sign_in(
    store: ControlStore, tokens: TokenFile, token: str, lifetime: dt.timedelta
) -> ConsoleSession | None:
    """A new session for a known token; None for an unknown one."""
    principal = tokens.verify(token)
    if principal is None:
        return None
    key, record = secrets.token_urlsafe(32), SessionRecord(token_hash(token), secrets.token_hex(32))
    with store.transaction() as connection:
        console_sessions.create(connection, _digest(key), record, utcnow(), lifetime)
    return ConsoleSession(key, principal, record.csrf_token)


def resume(store: ControlStore, tokens: TokenFile, key: str) -> ConsoleSession | None:
    """The session behind a cookie; None once it expired, ended or its token was revoked."""
    with store.transaction() as connection:
        record = console_sessions.find(connection, _digest(key), utcnow())
    principal = None if record is None else tokens.principal_for_digest(record.token_hash)
    if record is None or principal is None:
        return None
    return ConsoleSession(key, principal, record.csrf_token)


def sign_out(store: ControlStore, key: str) -> None:
    with store.transaction() as connection:
        console_sessions.end(connection, _digest(key))


def _digest(key: str) -> str:
    # Only the digest is stored: a copy of the control database opens no session.
    return hashlib.sha256(key.encode()).hexdigest()
