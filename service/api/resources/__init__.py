"""One module per resource: its marshmallow schemas and flask-smorest views."""
