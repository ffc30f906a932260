"""Who may do what: roles, permissions, database scope, and per-database policy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.errors import DatabaseNotFoundError, ForbiddenError, PolicyRefusedError
from service.settings import ManagedDatabase


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    APPROVER = "approver"


class Permission(StrEnum):
    READ = "read"
    UPGRADE = "upgrade"
    CANCEL = "cancel"
    DOWNGRADE = "downgrade"
    STAMP = "stamp"
    APPROVE = "approve"
    WEBHOOKS = "webhooks"  # redeliver webhook deliveries
    OVERRIDE = "override"  # acknowledge lint findings, accept modified revisions, release locks


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.UPGRADE, Permission.CANCEL}),
    Role.ADMIN: frozenset(Permission),
    Role.APPROVER: frozenset({Permission.READ, Permission.APPROVE}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a token's name and role, maybe limited to some databases."""

    name: str
    role: Role
    databases: frozenset[str] | None = None  # None: every database

    def sees(self, database: str) -> bool:
        return self.databases is None or database in self.databases

    def require(self, permission: Permission, database: str | None = None) -> None:
        """Raise DatabaseNotFoundError outside its scope (it must not learn the database
        exists), ForbiddenError without the permission."""
        if database is not None and not self.sees(database):
            raise DatabaseNotFoundError(database)
        if permission not in GRANTS[self.role]:
            raise ForbiddenError(
                f"Token {self.name!r} ({self.role}) lacks the {permission} permission.",
                permission=str(permission),
                role=str(self.role),
            )


ANONYMOUS = Principal("anonymous", Role.ADMIN)  # only without tokens, on loopback or by choice


def check_policy(database: ManagedDatabase, action: str) -> None:
    """Refuse what the database's policy forbids, whoever asks."""
    if not database.allows(action):
        raise PolicyRefusedError(
            f"Database {database.name!r} ({database.environment or 'no environment'}) does "
            f"not allow {action}s (allow_{action} = false).",
            database=database.name,
        )
