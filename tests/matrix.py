"""The compatibility matrix's environments: their pins, where they are cached, how to build them.

`python -m tests.matrix build` (run by .ci/run) builds each missing one; the tests find them
with `environments()`. A venv's folder is keyed by its pins and its Python, so a changed pin
builds a new one and an unchanged one is reused from the cache.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("TEST_MATRIX_CACHE", Path.home() / ".cache" / "migctl-matrix"))


@dataclasses.dataclass(frozen=True)
class Environment:
    name: str
    python: str  # the CPython release it runs on ("3.9"), or "3" for the default python3
    pins: tuple[str, ...]

    @property
    def release(self) -> str:
        """The CPython release: "3" means the one running migctl (and this module)."""
        return self.python if self.python != "3" else f"{sys.version_info[0]}.{sys.version_info[1]}"

    @property
    def key(self) -> str:
        text = json.dumps([self.release, *self.pins])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def folder(self) -> Path:
        return CACHE / f"{self.name}-{self.key}"

    @property
    def interpreter(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def alembic(self) -> Path:
        return self.folder / "bin" / "alembic"

    @property
    def ready(self) -> bool:
        """Built completely: the marker is written last, so a half-built venv is never used."""
        return (self.folder / "complete").exists()


ENVIRONMENTS = (
    Environment(
        "alembic110-sa14",
        "3.9",
        ("alembic==1.10.4", "SQLAlchemy==1.4.54", "psycopg2-binary==2.9.10"),
    ),
    Environment(
        "alembic113-sa20",
        "3",
        (
            "alembic==1.13.3",
            "SQLAlchemy==2.0.36",
            "psycopg2-binary==2.9.10",
            "PyMySQL==1.1.1",
        ),
    ),
    Environment(
        "alembic-newest",
        "3",
        ("alembic==1.20.1", "SQLAlchemy==2.1.9", "psycopg2-binary==2.9.13"),
    ),
)


def find_python(release: str) -> str:
    """CPython `release` from pyenv or PATH (one that runs: pyenv's shims may not); CI fails
    loudly rather than test another release."""
    if release == "3":
        return sys.executable
    candidates = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{release}.*/bin/python3")))
    candidates += [found] if (found := shutil.which(f"python{release}")) else []
    for candidate in candidates:
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    raise SystemExit(f"matrix: CPython {release} is needed (python{release} or pyenv)")


def build(environment: Environment) -> None:
    if environment.ready:
        print(f"matrix: {environment.name} cached in {environment.folder}")
        return
    shutil.rmtree(environment.folder, ignore_errors=True)
    python = find_python(environment.python)
    print(f"matrix: building {environment.name} with {python}: {' '.join(environment.pins)}")
    subprocess.run([python, "-m", "venv", str(environment.folder)], check=True)
    pip = [str(environment.interpreter), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--no-input", *environment.pins], check=True)
    (environment.folder / "complete").write_text(freeze(environment))


def freeze(environment: Environment) -> str:
    """What is installed, as `pip freeze` lists it: compared before and after the tests."""
    return subprocess.run(
        [str(environment.interpreter), "-m", "pip", "freeze", "--all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def main(argv: list[str]) -> None:
    if argv != ["build"]:
        raise SystemExit("usage: python -m tests.matrix build")
    CACHE.mkdir(parents=True, exist_ok=True)
    for environment in ENVIRONMENTS:
        build(environment)


if __name__ == "__main__":
    main(sys.argv[1:])
