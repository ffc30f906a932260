"""Read a text/event-stream as it comes: one (id, kind, data) per event, comments skipped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    data: dict[str, Any]


def events(stream: IO[bytes]) -> Iterator[Event]:
    """Events of `stream` until it ends; fields as the HTML spec defines them (subset)."""
    fields: dict[str, str] = {}
    for raw in stream:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield Event(
                    int(fields.get("id") or 0),
                    fields.get("event", "message"),
                    json.loads(fields["data"]),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value
