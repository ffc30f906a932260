"""Progress while waiting: a line per revision started and finished, the failure's error and
SQL; GitHub Actions groups, errors and step summary, GitLab collapsible sections."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import IO, Any

from service.client.sse import Event

Describe = Callable[[str], str]  # a revision id -> its message ("" when unknown)
Note = Callable[[str], "str | None"]  # an approval event's kind -> what to say, or None
AWAITING, QUEUED = "operation.awaiting_approval", "operation.queued"
_STATUS_LINES = {
    AWAITING: "awaiting approval: an approver must approve it",
    QUEUED: "queued",
    "operation.running": "claimed by a worker",
}


class Reporter:
    def __init__(
        self,
        out: IO[str],
        environ: Mapping[str, str],
        describe: Describe,
        note: Note | None = None,
    ) -> None:
        self.out = out
        self.describe = describe
        self.note = note
        self.awaited = False
        self.github = environ.get("GITHUB_ACTIONS") == "true"
        self.gitlab = environ.get("GITLAB_CI") == "true"
        self.summary_path = environ.get("GITHUB_STEP_SUMMARY") if self.github else None
        self.output_path = environ.get("GITHUB_OUTPUT") if self.github else None
        self.finished: dict[int, dict[str, Any]] = {}
        self.started: set[int] = set()
        self.section = ""
        self.began = time.monotonic()

    def begin(self, operation: Mapping[str, Any]) -> None:
        title = (
            f"migctl: {operation['action']} {operation['database']} to {operation['revision']} "
            f"(operation {operation['id']}, {len(operation.get('planned_steps') or [])} "
            "planned steps)"
        )
        self.section = f"migctl_{operation['id']}"
        if self.github:
            self._print(f"::group::{title}")
        elif self.gitlab:
            self._print(f"\x1b[0Ksection_start:{int(time.time())}:{self.section}\r\x1b[0K{title}")
        else:
            self._print(title)

    def on_event(self, event: Event) -> None:
        step, data = event.data.get("step") or {}, event.data
        if event.kind == AWAITING or (event.kind == QUEUED and self.awaited):
            self._approval(event.kind)
        elif event.kind in _STATUS_LINES:
            self._print(_STATUS_LINES[event.kind])
        elif event.kind == "step.started" and step.get("position") not in self.started:
            self.started.add(step["position"])
            eta = data.get("eta_seconds")
            left = "" if eta is None else f" (about {eta:.1f} s left)"
            self._print(f"{self._label(step, data)}: started{left}")
        elif event.kind == "step.finished" and step.get("position") not in self.finished:
            self.finished[step["position"]] = step
            seconds = step["duration_ms"] / 1000
            self._print(f"{self._label(step, data)}: {step['outcome']} in {seconds:.2f} s")

    def _approval(self, kind: str) -> None:
        """Awaiting approval, then approved: a line (a notice in GitHub Actions) each."""
        self.awaited = self.awaited or kind == AWAITING
        line = (self.note(kind) if self.note else None) or _STATUS_LINES[kind]
        self._print(f"::notice title=migctl: approval::{_escaped(line)}" if self.github else line)

    def end(self, operation: Mapping[str, Any], timed_out: bool) -> None:
        if self.github:
            self._print("::endgroup::")
        elif self.gitlab:
            self._print(f"\x1b[0Ksection_end:{int(time.time())}:{self.section}\r\x1b[0K")
        error = operation.get("error")
        if error and not timed_out:
            self._failure(error)
        if self.summary_path:
            with open(self.summary_path, "a", encoding="utf-8") as summary:
                summary.write(markdown(operation, timed_out))
        if self.output_path:  # later steps: `migctl wait ${{ steps.<id>.outputs.operation-id }}`
            with open(self.output_path, "a", encoding="utf-8") as outputs:
                outputs.write(f"operation-id={operation['id']}\nstatus={operation['status']}\n")

    def _failure(self, error: Mapping[str, Any]) -> None:
        where = f" at {error['revision']}" if error.get("revision") else ""
        message = f"{error.get('code')}{where}: {error.get('message')}"
        if self.github:
            self._print(f"::error title=migctl: migration failed::{_escaped(message)}")
        else:
            self._print(f"error: {message}")
        if error.get("sql"):
            token = uuid.uuid4().hex  # the SQL must not be read as workflow commands
            self._print(f"::stop-commands::{token}" if self.github else "", skip_empty=True)
            self._print(f"SQL of the failing step:\n{error['sql'].rstrip()}")
            self._print(f"::{token}::" if self.github else "", skip_empty=True)

    def _label(self, step: Mapping[str, Any], data: Mapping[str, Any]) -> str:
        message = self.describe(step["revision"])
        total = data.get("total") or "?"
        return f"[{step['position']}/{total}] {step['revision']}" + (
            f" {message}" if message else ""
        )

    def _print(self, line: str, skip_empty: bool = False) -> None:
        if line or not skip_empty:
            print(line, file=self.out, flush=True)


def markdown(operation: Mapping[str, Any], timed_out: bool) -> str:
    """The operation as a GitHub step summary (GFM)."""
    status = "still running (timed out waiting)" if timed_out else operation["status"]
    lines = [
        f"### migctl: {operation['action']} `{operation['database']}` to "
        f"`{operation['revision']}`: {status}",
        "",
        "| # | revision | outcome | seconds |",
        "|---|---|---|---|",
    ]
    for step in operation.get("steps") or []:
        lines.append(
            f"| {step['position']} | `{step['revision']}` | {step['outcome']} | "
            f"{step['duration_ms'] / 1000:.2f} |"
        )
    error = operation.get("error")
    if error:
        lines += [
            "",
            f"**{error.get('code')}** at `{error.get('revision')}`: {error.get('message')}",
        ]
        if error.get("sql"):
            lines += ["", "```sql", error["sql"].rstrip(), "```"]
    return "\n".join(lines) + "\n\n"


def _escaped(text: str) -> str:
    """A workflow command's value: %, CR and LF escaped as GitHub documents."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
