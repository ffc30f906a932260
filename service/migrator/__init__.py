"""The only package that imports alembic: script graphs, database state, previews, runs."""
