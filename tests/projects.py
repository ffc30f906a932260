"""Small Alembic projects written into tmp_path: a linear chain of revisions given as code."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

# The first revision of every project: tables that exist before the range under test.
BASE_UPGRADE = """
op.create_table(
    "account",
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40), nullable=True),
    sa.Column("owner_id", sa.Integer, nullable=True),
)
op.create_index("ix_account_name", "account", ["name"])
"""


def write_project(root: Path, *upgrades: str, env_py: Path | None = None) -> Path:
    """A project whose revisions are r0 (BASE_UPGRADE), r1, r2 ... with these upgrade()
    bodies; returns its alembic.ini. `env_py` replaces the generic env.py."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / "linear" / "alembic.ini", root / "alembic.ini")
    migrations = root / "migrations"
    (migrations / "versions").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(env_py or FIXTURES / "linear" / "migrations" / "env.py", migrations / "env.py")
    for number, body in enumerate((BASE_UPGRADE, *upgrades)):
        write_revision(root, number, body)
    return root / "alembic.ini"


def write_revision(root: Path, number: int, body: str) -> Path:
    down = repr(f"r{number - 1}") if number else "None"
    path = root / "migrations" / "versions" / f"r{number}_step.py"
    path.write_text(
        f'"""step {number}\n\nRevision ID: r{number}\nRevises: {down}\n"""\n\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n"
        f"revision = 'r{number}'\ndown_revision = {down}\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        + textwrap.indent(textwrap.dedent(body).strip() or "pass", "    ")
        + "\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    return path
