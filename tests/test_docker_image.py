"""The Docker image's build, replayed without a Docker daemon.

The build stage's COPY lines are replayed from the repository, as `docker build` would send it
(less what .dockerignore leaves out), into an empty folder; the wheel is built there and
installed alone into a fresh virtualenv, which then serves the bundled example from an empty
working directory, as the image's `CMD ["migctl", "serve"]` does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).parent.parent
DOCKERFILE = ROOT / "Dockerfile"
BUILD_STAGE = "build"


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    destination: PurePosixPath  # absolute, in the image
    into_folder: bool  # several sources, or a destination ending in "/"


def instructions(dockerfile: Path) -> Iterator[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined."""
    logical = ""
    for line in dockerfile.read_text().splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (logical + line).strip().partition(" ")
        logical = ""
        yield keyword.upper(), arguments.strip()


def build_stage(dockerfile: Path) -> tuple[list[Copy], PurePosixPath]:
    """The build stage's COPY instructions from the context, and its last WORKDIR."""
    copies: list[Copy] = []
    workdir = PurePosixPath("/")
    in_stage = False
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            in_stage = arguments.split()[-1].lower() == BUILD_STAGE
        elif in_stage and keyword == "WORKDIR":
            workdir = workdir / arguments
        elif in_stage and keyword in ("COPY", "ADD"):
            words = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
            flags = [word for word in words if word.startswith("--")]
            if any(flag.startswith("--from") for flag in flags):
                continue  # from another stage or image, not from the context
            *sources, destination = [word for word in words if not word.startswith("--")]
            into_folder = len(sources) > 1 or destination.endswith("/")
            copies.append(Copy(sources, workdir / destination, into_folder))
    assert copies, f"no COPY in the {BUILD_STAGE!r} stage of {dockerfile}"
    return copies, workdir


def _pattern(pattern: str) -> re.Pattern[str]:
    # .dockerignore patterns: Go's filepath.Match, plus '**' for any number of folders.
    regex = ""
    rest = pattern
    while rest:
        if rest.startswith("**/"):
            regex, rest = regex + "(?:.*/)?", rest[3:]
        elif rest.startswith("**"):
            regex, rest = regex + ".*", rest[2:]
        elif rest[0] == "*":
            regex, rest = regex + "[^/]*", rest[1:]
        elif rest[0] == "?":
            regex, rest = regex + "[^/]", rest[1:]
        else:
            regex, rest = regex + re.escape(rest[0]), rest[1:]
    return re.compile(regex)


class DockerIgnore:
    """What `docker build` leaves out of the context: a path is out when the last pattern
    matching it or one of its parent folders is not an exception (`!`)."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        lines = path.read_text().splitlines() if path.is_file() else []
        for line in (line.strip() for line in lines):
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            cleaned = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            self.rules.append((exception, _pattern(cleaned)))

    def excludes(self, relative: str) -> bool:
        parts = relative.split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        excluded = False
        for exception, pattern in self.rules:
            if any(pattern.fullmatch(candidate) for candidate in candidates):
                excluded = not exception
        return excluded

    def context(self, root: Path) -> list[str]:
        """The files `docker build` would send, relative to `root`."""
        can_prune = not any(exception for exception, _ in self.rules)
        files = []
        for folder, folders, names in os.walk(root):
            base = Path(folder).relative_to(root).as_posix()
            prefix = "" if base == "." else base + "/"
            if can_prune:
                folders[:] = [name for name in folders if not self.excludes(prefix + name)]
            files += [prefix + name for name in names if not self.excludes(prefix + name)]
        return files


def landing(source: str, relative: str, into_folder: bool) -> str | None:
    """Where a context file lands below a COPY's destination for `source` ("" for the
    destination itself), or None when the source does not name it."""
    if source == ".":
        return relative
    pattern, parts = _pattern(source), relative.split("/")
    if pattern.fullmatch(relative):
        return parts[-1] if into_folder else ""
    for n in range(1, len(parts)):
        if pattern.fullmatch("/".join(parts[:n])):
            return "/".join(parts[n:])  # a folder's contents, not the folder itself
    return None


def replay(copies: list[Copy], context: list[str], root: Path, image: Path) -> None:
    """Copy what each COPY names from the context (files under `root`) into `image`."""
    for copy in copies:
        target = image / copy.destination.relative_to("/")
        for source in copy.sources:
            source = os.path.normpath(source).lstrip("/")
            landed = [(f, landing(source, f, copy.into_folder)) for f in context]
            named = [(f, below) for f, below in landed if below is not None]
            assert named, f"COPY {source}: not in the build context"
            for relative, below in named:
                destination = target / below if below else target
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / relative, destination)


def run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, **options)
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stdout}{result.stderr}"
    return result


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment, less what would let the new install see the checkout."""
    dropped = ("MIGCTL_", "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV")
    kept = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    return {**kept, **extra}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return json.load(response)


def wait_until_ready(process: subprocess.Popen[bytes], url: str, timeout: float = 60) -> bool:
    """Whether `url` answered 200 before `process` exited or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


@pytest.mark.slow
def test_image_build_stage_makes_a_wheel_that_serves_the_example_on_its_own(
    tmp_path: Path,
) -> None:
    copies, workdir = build_stage(DOCKERFILE)
    ignore = DockerIgnore(ROOT / ".dockerignore")
    image = tmp_path / "image"
    replay(copies, ignore.context(ROOT), ROOT, image)

    # The build stage's `pip wheel .`, without its dependencies (the runtime stage gets them).
    source, wheels = image / workdir.relative_to("/"), tmp_path / "wheels"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheels), "."],
        cwd=source,
        env=clean_environment(),
    )
    (wheel,) = wheels.glob("migctl-*.whl")
    leftovers = [
        n
        for n in zipfile.ZipFile(wheel).namelist()
        if "__pycache__" in n or n.endswith((".pyc", ".db"))
    ]
    assert leftovers == [], "the build context carried local files into the wheel"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], env=clean_environment())

    # Served from an empty folder: everything it needs must come from the wheel.
    empty, log = tmp_path / "cwd", tmp_path / "serve.log"
    empty.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(venv / "bin" / "migctl"), "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=empty,
            env=clean_environment(MIGCTL_DATA_DIR=str(empty / "data"), MIGCTL_WORKERS="1"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_until_ready(process, f"{url}/health/ready"), log.read_text()
        databases = get_json(f"{url}/api/v1/databases")
        status = get_json(f"{url}/api/v1/databases/example/status")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert [database["name"] for database in databases] == ["example"]
    assert Path(databases[0]["project"]["alembic_config"]).is_relative_to(venv)
    assert status["database"] == "example" and status["pending_count"] > 0
