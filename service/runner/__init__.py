"""Runs inside a project's own interpreter: stdlib, its alembic and SQLAlchemy, nothing of migctl.

Loaded by path (not as `service.runner`) under the name `migctl_runner`, so a project's own
`service` package cannot shadow it; see docs/runner-protocol.md for what it answers.
"""
