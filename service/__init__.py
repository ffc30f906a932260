"""migctl: a REST/JSON migration control service for Alembic."""

__version__ = "0.1.0"
