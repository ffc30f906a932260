"""Use case: lint the SQL a change would run (PostgreSQL), with revision opt-outs and policy."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from service.errors import LintBlockedError, MigctlError
from service.services.previews import PreviewCache, SqlPreview, preview_sql
from service.services.registry import Managed, Registry
from service.services.safety.rules import RULES, Severity
from service.services.safety.statements import RangeState, check_sql

# `# migctl-lint: allow dropping-column, renaming-column` anywhere in a revision file.
_OPT_OUT = re.compile(r"migctl-lint:\s*allow\s+([a-z][a-z-]*(?:[\s,]+[a-z][a-z-]*)*)")
_STATEMENT_CHARS = 2000


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    revision: str
    line: int  # in the revision's segment of the preview
    statement: str
    why: str
    instead: str
    opted_out: bool = False  # the revision's `migctl-lint: allow` comment names the rule
    acknowledged: bool = False  # an admin queued it anyway

    @property
    def blocks(self) -> bool:
        return self.severity == Severity.ERROR and not (self.opted_out or self.acknowledged)


@dataclass(frozen=True)
class LintReport:
    database: str
    policy: str
    dialect: str
    linted: bool
    findings: tuple[Finding, ...] = ()
    note: str = ""

    @property
    def blocking(self) -> list[Finding]:
        """What refuses the change: errors not opted out nor acknowledged, under `block`."""
        return [f for f in self.findings if f.blocks] if self.policy == "block" else []

    def acknowledging(self, rules: Iterable[str]) -> LintReport:
        wanted = set(rules)
        findings = tuple(replace(f, acknowledged=f.rule in wanted) for f in self.findings)
        return replace(self, findings=findings)

    def as_dict(self) -> dict[str, Any]:
        """The `lint` member of previews and operations (stored as JSON with an operation)."""
        findings = [{**f.__dict__, "blocks": f.blocks} for f in self.findings]
        return {
            "policy": self.policy,
            "dialect": self.dialect,
            "linted": self.linted,
            "note": self.note,
            "blocked": bool(self.blocking),
            "counts": _counts(self.findings),
            "findings": findings,
        }


def lint_preview(managed: Managed, preview: SqlPreview) -> LintReport:
    """The findings of every segment of `preview`, in order; only PostgreSQL SQL is linted."""
    database = managed.database
    policy = database.lint_policy
    if preview.dialect != "postgresql":
        note = f"only PostgreSQL SQL is linted (this is {preview.dialect}); try ?dialect=postgresql"
        return LintReport(database.name, policy, preview.dialect, False, note=note)
    state = RangeState(lock_timeout_set=database.effective_lock_timeout is not None)
    graph = managed.graph()
    findings: list[Finding] = []
    for segment in preview.revisions:
        allowed: frozenset[str] | None = None
        for hit in check_sql(segment.sql, state):
            if allowed is None:  # read only for revisions with findings
                allowed = _opt_outs(database.project_dir / graph.info(segment.revision).path)
            rule = RULES[hit.rule]
            findings.append(
                Finding(
                    rule=rule.id,
                    severity=hit.severity or rule.severity,
                    revision=segment.revision,
                    line=segment.sql.count("\n", 0, hit.offset) + 1,
                    statement=hit.statement[:_STATEMENT_CHARS],
                    why=rule.why,
                    instead=rule.instead,
                    opted_out=rule.id in allowed,
                )
            )
    return LintReport(database.name, policy, preview.dialect, True, tuple(findings))


def refuse_if_blocked(report: LintReport) -> None:
    """Raise LintBlockedError listing the findings that block the change."""
    blocking = report.blocking
    if blocking:
        rules = sorted({f.rule for f in blocking})
        raise LintBlockedError(
            f"The SQL of this change breaks {len(blocking)} lint rule(s) of database "
            f"{report.database!r} (lint = block): {', '.join(rules)}. Fix the revisions, opt "
            "out in a revision (# migctl-lint: allow <rule>), or have an admin acknowledge.",
            findings=[{**f.__dict__, "blocks": True} for f in blocking],
            rules=rules,
        )


def _opt_outs(path: Path) -> frozenset[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    found = (re.split(r"[\s,]+", m.group(1)) for m in _OPT_OUT.finditer(text))
    return frozenset(rule for group in found for rule in group if rule)


def _counts(findings: Iterable[Finding]) -> dict[str, int]:
    counts = {"error": 0, "warning": 0, "opted_out": 0, "acknowledged": 0}
    for finding in findings:
        counts[finding.severity] += 1
        counts["opted_out"] += finding.opted_out
        counts["acknowledged"] += finding.acknowledged
    return counts


def lint_range(
    registry: Registry, cache: PreviewCache, name: str, **range_: Any
) -> tuple[SqlPreview, LintReport]:
    """GET .../lint: the preview of the range (as /sql takes it) and its findings."""
    preview = preview_sql(registry, cache, name, **range_)
    return preview, lint_preview(registry.get(name), preview)


def with_lint(registry: Registry, preview: SqlPreview) -> SqlPreview:
    """The preview with its `lint` member, unless the database's policy is `off`."""
    managed = registry.get(preview.database)
    if managed.database.lint_policy == "off":
        return preview
    return replace(preview, lint=lint_preview(managed, preview).as_dict())


@dataclass(frozen=True)
class PlanToLint:
    action: str
    start: tuple[str, ...]
    to: str
    acknowledge: tuple[str, ...] = ()


def lint_plan(
    registry: Registry, cache: PreviewCache, managed: Managed, plan: PlanToLint
) -> dict[str, Any] | None:
    """The lint of a queued operation's plan; raises LintBlockedError when it must not run.

    A range that cannot be rendered offline cannot be linted: it is queued, and says so.
    """
    database = managed.database
    if database.lint_policy == "off":
        return None
    if database.dialect != "postgresql":  # not rendered just to say so: queueing stays quick
        return LintReport(
            database.name,
            database.lint_policy,
            database.dialect,
            False,
            note=f"only PostgreSQL SQL is linted (this is {database.dialect})",
        ).as_dict()
    try:
        preview = preview_sql(
            registry,
            cache,
            database.name,
            action=plan.action,
            from_=",".join(plan.start) or "base",
            to=plan.to,
            twice=False,  # a quarter of a second less before an operation of 200 revisions
        )
    except MigctlError as exc:
        note = f"not linted: {exc.code}: {exc.detail}"
        return LintReport(database.name, database.lint_policy, "", False, note=note).as_dict()
    report = lint_preview(managed, preview).acknowledging(plan.acknowledge)
    refuse_if_blocked(report)
    return report.as_dict()
