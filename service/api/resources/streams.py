"""Server-sent event streams of operations, and waiting for a database to reach a revision."""

from __future__ import annotations

import json
from collections.abc import Iterator

import marshmallow as ma
from flask import Response, current_app
from flask.views import MethodView

from service.api.context import (
    control_store,
    current_principal,
    registry,
    services,
    waiter_slots,
)
from service.api.fields import revision_spec
from service.api.slots import STREAMS, Slots
from service.api.smorest import Blueprint
from service.api.stopping import STOPPING
from service.errors import StreamsBusyError
from service.services import streams, waits
from service.services.streams import EventRecord, Follow

blp = Blueprint("Events", __name__, description="Live progress, and waiting for a revision.")

RECONNECT_MS = 3000  # what `retry:` tells an EventSource to wait before it reconnects
_STREAM = {
    "description": "text/event-stream: `retry:` first, then one event per change (`id:`, "
    "`event:` the kind, `data:` JSON) and `: keep-alive` comments",
    "content": {
        "text/event-stream": {
            "schema": {
                "description": "One event",
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "Send back as Last-Event-ID"},
                    "event": {
                        "type": "string",
                        "description": "operation.queued, operation.running, step.started, "
                        "step.finished, operation.succeeded|failed|interrupted|cancelled",
                    },
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "description": "JSON: id, kind, at, operation_id, database, action, "
                        "revision, status, done, total, eta_seconds, error, step",
                    },
                    "retry": {"type": "integer", "description": "Reconnect delay (ms)"},
                },
            }
        }
    },
}
_RETRY_AFTER = {
    "description": "Sent when the database had not reached the revision and the wait was "
    "not honoured (too many waiting calls): seconds before waiting again",
    "schema": {"type": "integer", "minimum": 0},
}


class ResumeSchema(ma.Schema):
    last_event_id = ma.fields.Integer(
        data_key="Last-Event-ID",
        load_default=None,
        validate=ma.validate.Range(min=0, max=2**31 - 1),
        metadata={"description": "Resume after this event id (what EventSource sends back)"},
    )


class EventQuerySchema(ma.Schema):
    database = ma.fields.String(
        validate=ma.validate.Length(max=63), metadata={"description": "Only this database's"}
    )


class WaitQuerySchema(ma.Schema):
    revision = revision_spec(required=True, metadata={"description": "head, an id, branch@head"})
    timeout = ma.fields.Float(
        load_default=30,
        validate=ma.validate.Range(min=0, max=waits.MAX_WAIT_SECONDS),
        metadata={"description": f"Seconds to wait, up to {waits.MAX_WAIT_SECONDS}"},
    )


class RevisionWaitSchema(ma.Schema):
    database = ma.fields.String()
    revision = ma.fields.String(metadata={"description": "The spec as asked"})
    target_revisions = ma.fields.List(ma.fields.String(), metadata={"description": "It names"})
    current_heads = ma.fields.List(ma.fields.String())
    reached = ma.fields.Boolean(metadata={"description": "All target revisions are applied"})


@blp.route("/operations/<id:operation_id>/events")
class OperationEvents(MethodView):
    @blp.arguments(ResumeSchema, location="headers")
    @blp.doc(responses={"200": _STREAM})
    @blp.problems(404, 503)
    def get(self, headers, operation_id):
        """Follow one operation as server-sent events

        Replays its events after `Last-Event-ID`, then sends each as it happens; ends once
        the operation has ended, or after MIGCTL_STREAM_SECONDS (reconnect to resume).
        """
        streams.check_operation(control_store(), operation_id, current_principal())
        after = headers["last_event_id"] or 0  # from its first event
        return _stream(Follow(after=after, operation_id=operation_id))


@blp.route("/events")
class Events(MethodView):
    @blp.arguments(EventQuerySchema, location="query")
    @blp.arguments(ResumeSchema, location="headers")
    @blp.doc(responses={"200": _STREAM})
    @blp.problems(404, 503)
    def get(self, args, headers):
        """Follow every operation this token may see as server-sent events

        From now on, or after `Last-Event-ID` (0: from the first event). With `database`,
        only that database's operations. Ends after MIGCTL_STREAM_SECONDS.
        """
        asked = None
        if "database" in args:
            asked = frozenset({registry().get(args["database"]).database.name})
        after = headers["last_event_id"]
        if after is None:
            after = streams.newest_event_id(control_store())
        return _stream(Follow(after=after, databases=asked))


@blp.route("/databases/<dbname:db>/wait")
class RevisionWait(MethodView):
    @blp.arguments(WaitQuerySchema, location="query")
    @blp.response(200, RevisionWaitSchema, headers={"Retry-After": _RETRY_AFTER})
    @blp.problems(404, 409, 422, 503)
    def get(self, args, db):
        """Wait until the database reaches (or passes) a revision

        Answers as soon as every revision the spec names is applied (`reached: true`), or
        after `timeout` seconds (`reached: false`). When too many calls wait already,
        answers at once, with `Retry-After`.
        """
        with waiter_slots().take() as waits_here:
            timeout = args["timeout"] if waits_here else 0
            answer = waits.wait_for_revision(registry(), db, args["revision"], timeout)
        retry = not waits_here and not answer.reached
        return answer, 200, {"Retry-After": "2"} if retry else {}


def follow_response(what: Follow) -> Response:
    """The event stream of `what` (the console follows operations through it too)."""
    return _stream(what)


def _stream(what: Follow) -> Response:
    """The stream as a response that holds one of the process's stream slots until it closes."""
    slots: Slots = current_app.extensions[STREAMS]
    if not slots.acquire():
        raise StreamsBusyError(
            f"This process already serves {slots.limit} event streams; retry, or poll "
            "`GET /api/v1/operations/{id}?wait=`."
        )
    settings = services().settings
    what = Follow(
        after=what.after,
        operation_id=what.operation_id,
        databases=what.databases,
        lifetime=settings.stream_seconds,
        keepalive=settings.stream_keepalive_seconds,
        stop=STOPPING,
    )
    body = _lines(streams.follow(control_store(), what, current_principal()))
    response = Response(body, mimetype="text/event-stream")
    response.headers.update({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.call_on_close(slots.release)
    return response


def _lines(events: Iterator[EventRecord | None]) -> Iterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    for event in events:
        if event is None:
            yield ": keep-alive\n\n"
            continue
        data = {"id": event.id, "kind": event.kind, "at": event.created_at.isoformat()}
        data.update(event.payload)
        yield f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(data)}\n\n"
