"""The `lint` member of previews, operations and GET .../lint (marshmallow schemas)."""

from __future__ import annotations

import marshmallow as ma

from service.services.safety.rules import RULES


class FindingSchema(ma.Schema):
    rule = ma.fields.String(metadata={"description": "A stable id: " + ", ".join(RULES)})
    severity = ma.fields.String(metadata={"description": "error (blocks) or warning"})
    revision = ma.fields.String()
    line = ma.fields.Integer(metadata={"description": "In the revision's segment of the SQL"})
    statement = ma.fields.String()
    why = ma.fields.String()
    instead = ma.fields.String(metadata={"description": "The safe alternative"})
    opted_out = ma.fields.Boolean(
        metadata={"description": "The revision says `# migctl-lint: allow <rule>`"}
    )
    acknowledged = ma.fields.Boolean(metadata={"description": "An admin queued it anyway"})
    blocks = ma.fields.Boolean(metadata={"description": "Refuses the change under `block`"})


class LintSchema(ma.Schema):
    policy = ma.fields.String(metadata={"description": "off, warn or block"})
    dialect = ma.fields.String()
    linted = ma.fields.Boolean(metadata={"description": "False for SQL other than PostgreSQL's"})
    note = ma.fields.String()
    blocked = ma.fields.Boolean(metadata={"description": "A queued operation would be refused"})
    counts = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer())
    findings = ma.fields.List(ma.fields.Nested(FindingSchema), metadata={"description": "In order"})
