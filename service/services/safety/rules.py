"""The lint rules: stable ids, severity, why each statement is dangerous, what to do instead."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # blocks under `lint = "block"`
    WARNING = "warning"  # shown, never blocks


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    why: str
    instead: str


def _rule(rule_id: str, severity: Severity, why: str, instead: str) -> Rule:
    return Rule(rule_id, severity, why, instead)


E, W = Severity.ERROR, Severity.WARNING

RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        _rule(
            "adding-required-column",
            E,
            "A NOT NULL column without a default fails on a table with rows, and breaks "
            "inserts of the code still running, which does not know the column.",
            "Add the column nullable (or with a constant default), backfill, then add a "
            "CHECK (col IS NOT NULL) NOT VALID and VALIDATE it.",
        ),
        _rule(
            "volatile-default",
            E,
            "ADD COLUMN with a volatile DEFAULT (clock_timestamp(), random(), "
            "gen_random_uuid() ...) rewrites the whole table under an ACCESS EXCLUSIVE lock.",
            "Add the column without a default, set the default for new rows, backfill in batches.",
        ),
        _rule(
            "non-concurrent-index-creation",
            E,
            "CREATE INDEX on an existing table takes a SHARE lock: writes wait until the "
            "whole index is built.",
            "CREATE INDEX CONCURRENTLY (op.create_index(..., postgresql_concurrently=True) "
            "inside op.get_context().autocommit_block()).",
        ),
        _rule(
            "non-concurrent-index-deletion",
            E,
            "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: reads and writes wait.",
            "DROP INDEX CONCURRENTLY, in an autocommit block.",
        ),
        _rule(
            "foreign-key-without-not-valid",
            E,
            "ADD FOREIGN KEY scans the table under a SHARE ROW EXCLUSIVE lock on both tables: "
            "writes wait for the scan.",
            "Add it NOT VALID (postgresql_not_valid=True), then VALIDATE CONSTRAINT in a "
            "later step (a weaker lock).",
        ),
        _rule(
            "check-without-not-valid",
            E,
            "ADD CHECK scans the whole table under an ACCESS EXCLUSIVE lock.",
            "Add it NOT VALID, then VALIDATE CONSTRAINT in a later step.",
        ),
        _rule(
            "setting-not-null",
            E,
            "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock.",
            "Add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (which "
            "uses the valid check and skips the scan, PostgreSQL 12+).",
        ),
        _rule(
            "changing-column-type",
            E,
            "ALTER COLUMN TYPE takes an ACCESS EXCLUSIVE lock and rewrites the table (and "
            "its indexes) unless the types are binary compatible; running code may break.",
            "Add a new column, backfill it, switch the code, then drop the old one. Widening "
            "a varchar or changing it to text does not rewrite.",
        ),
        _rule(
            "renaming-column",
            E,
            "The code still running reads and writes the old name: it fails until deployed.",
            "Add the new column, write both, backfill, switch reads, then drop the old one.",
        ),
        _rule(
            "renaming-table",
            E,
            "The code still running queries the old name: it fails until deployed.",
            "Create the new table (or a view under the old name) and move the code over first.",
        ),
        _rule(
            "dropping-column",
            E,
            "The data is lost, and code still running that names the column fails.",
            "Stop using the column in a deployed release first, then drop it.",
        ),
        _rule(
            "dropping-table",
            E,
            "The data is lost, and code still running that queries the table fails.",
            "Stop using the table in a deployed release first, then drop it.",
        ),
        _rule(
            "unique-constraint-without-index",
            E,
            "ADD UNIQUE (or PRIMARY KEY) builds its index under an ACCESS EXCLUSIVE lock: "
            "reads and writes wait.",
            "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT ... UNIQUE (or "
            "PRIMARY KEY) USING INDEX.",
        ),
        _rule(
            "missing-lock-timeout",
            E,
            "A statement that waits for its lock behind a long query queues every query of "
            "the table behind it: an outage with no error.",
            "Set the database's `lock_timeout` (migctl sets it on the migration "
            "connection), or SET lock_timeout first in the revision.",
        ),
        _rule(
            "unparsable-sql",
            W,
            "PostgreSQL's parser cannot read this SQL, so it was not linted.",
            "Check the SQL the revision renders (GET .../sql).",
        ),
    )
}
