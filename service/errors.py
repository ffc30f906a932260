"""Every error migctl raises on purpose, each with a stable `code` slug and no HTTP in it.

MigctlError
├── ConfigError                      configuration that cannot start the service
├── DatabaseNotFoundError            no managed database of that name
├── RevisionNotFoundError            no revision matches an id or branch label
├── RevisionSpecError                a revision spec that cannot be resolved here
│   ├── AmbiguousRevisionError       a partial id that matches several revisions
│   └── RelativeStepError            a relative step (+2, head-1) that cannot be walked
├── MultipleHeadsError               one revision needed, several heads found
├── UnknownDatabaseRevisionError     the database records a revision the scripts lack
├── ProjectUnavailableError          the Alembic project cannot be loaded (broken file)
└── DatabaseUnavailableError         the managed database cannot be reached or read
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class MigctlError(Exception):
    """Base of every migctl error; `code` is the slug clients branch on."""

    code: ClassVar[str] = "error"
    # What a client (a deployment pipeline, say) should do about it: the README's error table.
    advice: ClassVar[str] = ""
    # The context members a problem of this class carries beside the standard ones.
    members: ClassVar[tuple[str, ...]] = ()

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context: Mapping[str, Any] = context


class ConfigError(MigctlError):
    """The configuration names a file, database or key that cannot work."""

    code = "config-invalid"
    advice = "fix the file, database or key it names; `migctl check-config` checks"


class DatabaseNotFoundError(MigctlError):
    """No managed database has this name."""

    code = "database-not-found"
    advice = "fix the request (a scoped token sees only its databases)"
    members = ("database",)

    def __init__(self, name: str) -> None:
        super().__init__(f"No managed database is named {name!r}.", database=name)


class RevisionNotFoundError(MigctlError):
    """No revision or branch label matches the given identifier."""

    code = "revision-not-found"
    advice = "fix the revision id or branch label"
    members = ("revision",)


class RevisionSpecError(MigctlError):
    """A revision spec is well formed but cannot be resolved against this graph."""

    code = "revision-unresolvable"
    advice = "fix the spec"
    members: ClassVar[tuple[str, ...]] = ("revision", "heads")


class AmbiguousRevisionError(RevisionSpecError):
    """A partial revision id matches more than one revision."""

    code = "ambiguous-revision"
    advice = "give more characters of the id"
    members = ("revision",)


class RelativeStepError(RevisionSpecError):
    """A relative step (`+2`, `head-1`, `-1`) cannot be walked from where it starts."""

    code = "invalid-relative-step"
    advice = "fix the spec (`branch@-1` when there are several heads)"
    members = ("revision", "heads")


class MultipleHeadsError(MigctlError):
    """One revision was needed but the spec resolves to several heads."""

    code = "multiple-heads"
    advice = "name a branch (`branch@head`) or a revision"
    members = ("heads",)

    def __init__(self, detail: str, heads: Sequence[str]) -> None:
        super().__init__(detail, heads=list(heads))


class UnknownDatabaseRevisionError(MigctlError):
    """The database's version table records revisions the scripts do not contain."""

    code = "unknown-database-revision"
    advice = "deploy the newer scripts; stop"
    members = ("revisions",)

    def __init__(self, database: str, revisions: Sequence[str]) -> None:
        names = ", ".join(revisions)
        super().__init__(
            f"Database {database!r} is at revision(s) {names}, which the Alembic project "
            "does not contain: the database is newer than the scripts, or a file was removed.",
            revisions=list(revisions),
        )


class OfflineUnsupportedError(MigctlError):
    """Some revisions of a preview range cannot be rendered as SQL without a live database."""

    code = "offline-unsupported"
    advice = "guard those revisions with `context.is_offline_mode()`"
    members = ("unsupported",)

    def __init__(self, unsupported: Sequence[Mapping[str, str]]) -> None:
        names = ", ".join(item["revision"] for item in unsupported)
        super().__init__(
            f"{len(unsupported)} revision(s) cannot be rendered offline: {names}. Guard code "
            "that needs a live database with context.is_offline_mode().",
            unsupported=[dict(item) for item in unsupported],
        )


class ProjectUnavailableError(MigctlError):
    """The database's Alembic project cannot be loaded; `path` names the file at fault."""

    code = "project-unavailable"
    advice = "fix the file; migctl picks it up without a restart"
    members = ("path", "line")


class DatabaseUnavailableError(MigctlError):
    """The managed database cannot be reached, or its version table cannot be read."""

    code = "database-unavailable"
    advice = "retry after `Retry-After`"


class ControlDatabaseUnavailableError(MigctlError):
    """migctl's own database (operations, audit) cannot be reached, or its schema is behind."""

    code = "control-database-unavailable"
    advice = "retry after `Retry-After`"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The control database is unavailable: {reason}")


class OperationNotFoundError(MigctlError):
    """No operation has this id."""

    code = "operation-not-found"
    advice = "fix the request"
    members = ("operation_id",)

    def __init__(self, operation_id: int) -> None:
        super().__init__(f"No operation has id {operation_id}.", operation_id=operation_id)


class OperationConflictError(MigctlError):
    """The operation is not in a state that allows the change (e.g. cancel once running)."""

    code = "operation-not-cancellable"
    advice = "wait for it instead"
    members = ("operation_id", "operation_status")


class IdempotencyKeyReusedError(MigctlError):
    """The Idempotency-Key was already used for a request with another body or database."""

    code = "idempotency-key-reused"
    advice = "use a new key per request"
    members = ("operation_id",)


class RolloutNotFoundError(MigctlError):
    """No rollout has this id."""

    code = "rollout-not-found"
    advice = "fix the request"
    members = ("rollout_id",)

    def __init__(self, rollout_id: int) -> None:
        super().__init__(f"No rollout has id {rollout_id}.", rollout_id=rollout_id)


class RolloutConflictError(MigctlError):
    """The rollout's status does not allow the change (resume a finished one, say)."""

    code = "rollout-conflict"
    advice = "read the rollout's status; a finished rollout stays finished"
    members = ("rollout_id", "rollout_status")


class EmptySelectionError(MigctlError):
    """A rollout's selector matched no managed database."""

    code = "selection-empty"
    advice = "fix the selector (names, environment, labels)"


class RolloutStoppedError(MigctlError):
    """The rollout ended (failed or cancelled) before this database's operation was queued."""

    code = "rollout-stopped"
    advice = "see the rollout's failed targets; start a new rollout for the rest"


class PreconditionFailedError(MigctlError):
    """The database's current revisions are not the `expected_current` the request named."""

    code = "precondition-failed"
    advice = "someone else migrated: stop and look"
    members = ("expected_current", "current")

    def __init__(self, expected: Sequence[str], actual: Sequence[str]) -> None:
        super().__init__(
            f"The database is at {', '.join(actual) or 'base'}, not at the expected "
            f"{', '.join(expected) or 'base'}.",
            expected_current=list(expected),
            current=list(actual),
        )


class DatabaseLockedError(MigctlError):
    """Another migration (another migctl, or one holding our lock) runs on this database."""

    code = "database-locked"
    advice = "another tool migrates this database: wait, then queue again"


class MigrationFailedError(MigctlError):
    """A revision raised while it ran; `revision` and `sql` say where and what ran."""

    code = "migration-failed"
    advice = "fix the revision; `heads_after` says where the database is"
    members = ("revision", "sql")

    def __init__(
        self, revision: str, error: BaseException, sql: str, secrets: Sequence[str] = ()
    ) -> None:
        reason = str(getattr(error, "orig", None) or error).strip()
        detail = f"{revision}: {type(error).__name__}: {reason}"
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            detail, sql = detail.replace(secret, "***"), sql.replace(secret, "***")
        super().__init__(detail, revision=revision, error_type=type(error).__name__, sql=sql)


class RevisionsModifiedError(MigctlError):
    """Revision files the database has applied were edited or removed since migctl applied them."""

    code = "revisions-modified"
    advice = "restore the files, or have an admin accept them (`POST .../verify/accept`)"
    members = ("modified", "missing")


class NoTargetMetadataError(MigctlError):
    """The project's env.py sets no target_metadata: there are no models to compare with."""

    code = "no-target-metadata"
    advice = "pass the models' MetaData to context.configure(target_metadata=...) in env.py"


class DriftCheckNotFoundError(MigctlError):
    """No drift check of this database has this id."""

    code = "drift-check-not-found"
    advice = "fix the request"


class LockHeldError(MigctlError):
    """The migration lock's holder is alive (its session, or a lease not yet expired)."""

    code = "lock-held"
    advice = "wait for it, or end that session; only a lock whose holder is gone is released"
    members = ("holder", "lease")


class LockTimeoutError(MigctlError):
    """A step waited longer than the database's lock_timeout for a lock; it was rolled back."""

    code = "lock-timeout"
    advice = "see who held the lock (`blockers` in the audit event), then queue again"
    members = ("revision", "sql", "blockers")


class JobStartError(MigctlError):
    """The job process hung or died before it began migrating (nothing was changed)."""

    code = "job-start-failed"
    advice = "nothing changed: fix what hangs in env.py, then queue again"


class UnauthenticatedError(MigctlError):
    """No bearer token, or a token migctl does not know."""

    code = "unauthenticated"
    advice = "send `Authorization: Bearer <token>` with a token of the tokens file"


class CsrfError(MigctlError):
    """A console form came without this session's CSRF token: stale, or from another site."""

    code = "csrf-failed"
    advice = "reload the console page and submit the form again"


class AuthUnavailableError(MigctlError):
    """Tokens cannot be checked (the tokens file no longer parses): every token is refused."""

    code = "auth-unavailable"
    advice = "tell migctl's operator (the log names the file); retry after `Retry-After`"


class ForbiddenError(MigctlError):
    """The token's role does not grant the permission the request needs."""

    code = "forbidden"
    advice = "use a token whose role has the permission"
    members = ("permission", "role")


class PolicyRefusedError(MigctlError):
    """The database's policy forbids this action (allow_downgrade / allow_stamp)."""

    code = "policy-refused"
    advice = "change the database's policy, or do not do it there"
    members = ("database",)


class SelfApprovalError(MigctlError):
    """The requester (same token, or the same person on whose behalf) approves its own."""

    code = "self-approval"
    advice = "ask another person with the approve permission"
    members = ("operation_id",)


class ApprovalConflictError(MigctlError):
    """The operation no longer awaits approval, or this person already decided on it."""

    code = "approval-conflict"
    advice = "read the operation: it moved on, or your decision is already recorded"
    members = ("operation_id", "operation_status")


class ApprovalStaleError(MigctlError):
    """The plan or a revision file changed since the operation was requested or approved."""

    code = "approval-stale"
    advice = "nothing ran: review the new plan and request the operation again"
    members = ("operation_id", "changed")


class WebhookNotFoundError(MigctlError):
    """No webhook of this name in the webhooks file (or no such delivery of it)."""

    code = "webhook-not-found"
    advice = "fix the name or id (GET /api/v1/webhooks lists them)"
    members = ("webhook", "delivery_id")


class TransactionPoolerError(MigctlError):
    """The migration connection goes through a transaction pooler: a session lock would leak."""

    code = "transaction-pooler"
    advice = 'give the database a direct `migration_url`, or set `lock = "table"`'


class StreamsBusyError(MigctlError):
    """This API process serves as many event streams as it may; a thread must stay free."""

    code = "too-many-streams"
    advice = "retry after `Retry-After`, or fall back to `?wait=` polling"


class LintBlockedError(MigctlError):
    """The SQL of the change breaks lint rules and the database's policy is `lint = "block"`."""

    code = "lint-blocked"
    advice = "fix the revisions, opt out in the revision, or have an admin `acknowledge` rules"
    members = ("findings", "rules")


def _by_code() -> dict[str, type[MigctlError]]:
    found: dict[str, type[MigctlError]] = {}
    pending: list[type[MigctlError]] = [MigctlError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


def error_from_wire(message: Mapping[str, Any]) -> MigctlError:
    """The MigctlError a project runner reported (code, detail, context), as if raised here.

    A code migctl does not know means the runner failed in a way of its own: the project is
    unavailable until it is fixed, and the detail says why.
    """
    cls = _by_code().get(str(message.get("code")), ProjectUnavailableError)
    if cls is MigctlError:
        cls = ProjectUnavailableError
    error = cls.__new__(cls)
    MigctlError.__init__(
        error, str(message.get("detail") or ""), **dict(message.get("context") or {})
    )
    return error


def redacted(error: MigctlError, secrets: Sequence[str]) -> MigctlError:
    """The same error with every secret taken out of its detail and string context."""
    ordered = sorted((s for s in secrets if s), key=len, reverse=True)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in ordered:
                value = value.replace(secret, "***")
            return value
        if isinstance(value, list):
            return [clean(item) for item in value]
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        return value

    copy = type(error).__new__(type(error))
    MigctlError.__init__(copy, clean(error.detail), **clean(dict(error.context)))
    return copy
