"""The README's error tables, generated from the one registry (PROBLEMS, HTTP_CODES,
OUTSIDE_HTTP in problems.py and the error classes themselves): `migctl docs write`."""

from __future__ import annotations

import http
import re
from dataclasses import dataclass

from werkzeug.exceptions import default_exceptions

from service.api.problems import HTTP_CODES, OUTSIDE_HTTP, PROBLEMS
from service.errors import MigctlError
from service.lifecycle import Status

START = "<!-- errors:start (written by `migctl docs write`; edit service/errors.py) -->"
END = "<!-- errors:end -->"
_BLOCK = re.compile(re.escape(START[: START.index(" (")]) + r".*?" + re.escape(END), re.DOTALL)


@dataclass(frozen=True)
class Row:
    code: str
    title: str
    when: str
    advice: str
    members: tuple[str, ...] = ()
    status: int = 0  # 0: never an HTTP answer
    where: str = ""


# Errors raised by Flask, werkzeug and webargs: when they happen, what to do (by code).
_HTTP_NOTES: dict[str, tuple[str, str]] = {
    "bad-request": ("the body is not valid JSON, or a header cannot be parsed", "fix the request"),
    "not-found": (
        "no such route, or a name that is not a valid database name, revision spec or id",
        "fix the request",
    ),
    "method-not-allowed": (
        "the path does not take this method; `Allow` lists those it takes",
        "fix the request",
    ),
    "not-acceptable": (
        "`Accept` names no media type the endpoint answers with",
        "accept `application/json` (or `text/plain` for `/sql`)",
    ),
    "payload-too-large": (
        "the body is larger than `MIGCTL_MAX_BODY_BYTES`",
        "send a smaller body (a shorter `reason`)",
    ),
    "unsupported-media-type": (
        "the body is not `application/json`",
        "send JSON with `Content-Type: application/json`",
    ),
    "validation-failed": (
        "a field of the body, query or headers is invalid, or unknown",
        "fix the request",
    ),
    "precondition-failed": (
        "`If-Match` does not match the resource's ETag",
        "read the resource again, then retry",
    ),
    "precondition-required": (
        "the request needs an `If-Match` header",
        "send the ETag you read as `If-Match`",
    ),
    "internal-error": ("a bug in migctl", "report it with its `request_id`"),
}
_INTERRUPTED = Row(
    code=str(Status.INTERRUPTED),
    title="Operation interrupted",
    when="its job or worker died, or shutdown outlasted the grace period",
    advice="look at `heads_after`, then queue again (never retried by itself)",
    where="an interrupted operation's `error`",
)


def problem_rows() -> list[Row]:
    """One row per status and code a problem answer can carry, by status then code."""
    rows = [_domain_row(cls, status, title) for cls, (status, title) in PROBLEMS.items()]
    rows += [_http_row(status, code) for status, code in HTTP_CODES.items()]
    return sorted(rows, key=lambda row: (row.status, row.code))


def outside_http_rows() -> list[Row]:
    """Codes a client meets outside a problem answer: in an operation, or at start."""
    rows = [_domain_row(cls, 0, title, where) for cls, (title, where) in OUTSIDE_HTTP.items()]
    return sorted([*rows, _INTERRUPTED], key=lambda row: (row.where, row.code))


def error_classes() -> list[type[MigctlError]]:
    """Every MigctlError subclass that has a code of its own."""
    found: list[type[MigctlError]] = []
    pending = list(MigctlError.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if "code" in vars(cls):
            found.append(cls)
    return sorted(found, key=lambda cls: cls.code)


def render() -> str:
    """The Markdown of both tables."""
    lines = [
        "| status | code | title | when | what a pipeline should do |",
        "|---|---|---|---|---|",
        *(
            _line(str(row.status), _code(row), row.title, row.when, row.advice)
            for row in problem_rows()
        ),
        "",
        "A failed operation's `error.code` is one of the codes above when planning it again "
        "under the lock fails (`precondition-failed`, `multiple-heads` ...), or one of these:",
        "",
        "| where | code | title | when | what to do |",
        "|---|---|---|---|---|",
        *(
            _line(row.where, _code(row), row.title, row.when, row.advice)
            for row in outside_http_rows()
        ),
    ]
    return "\n".join(lines)


def rewrite(readme: str) -> str:
    """`readme` with the text between the markers replaced by the tables."""
    if not _BLOCK.search(readme):
        raise ValueError(f"the README has no {START!r} ... {END!r} block")
    return _BLOCK.sub(lambda _: f"{START}\n{render()}\n{END}", readme, count=1)


def _domain_row(cls: type[MigctlError], status: int, title: str, where: str = "") -> Row:
    return Row(
        code=cls.code,
        title=title,
        when=_first_line(cls.__doc__ or ""),
        advice=cls.advice,
        members=cls.members,
        status=status,
        where=where,
    )


def _http_row(status: int, code: str) -> Row:
    phrase = http.HTTPStatus(status)
    fallback = "fix the request" if status < 500 else "retry later"  # a code added to HTTP_CODES
    when, advice = _HTTP_NOTES.get(code, (phrase.description.rstrip(".").lower(), fallback))
    exception = default_exceptions.get(status)
    title = exception().name if exception is not None else phrase.phrase
    return Row(code=code, title=title, when=when, advice=advice, status=status)


def _first_line(docstring: str) -> str:
    line = docstring.strip().splitlines()[0] if docstring.strip() else ""
    return line[:1].lower() + line[1:].rstrip(".")


def _code(row: Row) -> str:
    members = ", ".join(f"`{member}`" for member in row.members)
    return f"`{row.code}`" + (f" ({members})" if members else "")


def _line(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
