"""JSON request bodies: declared as JSON, read and parsed without a hostile body reaching a 500."""

from __future__ import annotations

import json
from typing import Any

import flask
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import HTTPException

JSON_MEDIA_TYPE = "application/json"


class JsonBodyParser(FlaskParser):
    """webargs' parser, but a body that is not declared JSON is a 415 (webargs ignores it and
    reports every field missing), and what the server or json.loads raise on a hostile body
    (a broken chunked encoding, deep nesting, a number of thousands of digits) is a 400."""

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            if not req.mimetype and not _has_body(req):
                return core.missing  # nothing sent: the missing fields say it best
            abort(415, message=f"The body must be JSON: send Content-Type: {JSON_MEDIA_TYPE}.")
        data = _read(req)
        try:
            return core.parse_json(data)
        except json.JSONDecodeError:
            raise  # webargs: an empty body is missing, anything else a 400
        except RecursionError:
            abort(400, message="The JSON body is nested too deeply.")
        except ValueError:  # Python refuses to convert integers of more than 4,300 digits
            abort(400, message="The JSON body holds a number too long to read.")


def _has_body(req: flask.Request) -> bool:
    chunked = "chunked" in req.headers.get("Transfer-Encoding", "").lower()
    return chunked or bool(req.content_length)


def _read(req: flask.Request) -> bytes:
    try:
        return req.get_data(cache=True)
    except HTTPException:
        raise  # 413 over MAX_CONTENT_LENGTH, 400 on a client that went away
    except Exception as exc:  # WSGI does not say what a server's reader raises on bad framing
        abort(400, message=f"The request body cannot be read ({type(exc).__name__}).")
