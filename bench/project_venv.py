"""A second virtualenv for the benchmarked project: migctl drives it through a runner.

The project's alembic CLI (what migctl is compared with) is this venv's own, and migctl
never imports the project: its runner starts with this venv's interpreter.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = ("alembic==1.20.1", "SQLAlchemy==2.1.9", "psycopg2-binary==2.9.13")


def project_python(given: str | None) -> Path:
    """`given` (a project's interpreter), or a cached venv built with REQUIREMENTS."""
    if given:
        return Path(given)
    digest = hashlib.sha256(" ".join(REQUIREMENTS).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = cache / "migctl" / "bench" / f"project-{digest}"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"building the project's venv in {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *REQUIREMENTS], check=True)
    return python


def alembic_of(python: Path) -> Path:
    """That environment's own alembic CLI."""
    return python.with_name("alembic")
