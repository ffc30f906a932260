"""`migctl` as a person or a script runs it: help, version, and the tokens file commands."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import subprocess
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import __version__
from service.cli import _parser
from tests.helpers import MIGCTL, serve, wait_for

A, B = "a" * 64, "b" * 64  # the hashes, which `token list` must never print
TOKENS_FILE = f"""\
# Tokens of the shop's migctl. Ask #platform before adding one.

[tokens.ci-deploy]  # the release pipeline
role = "operator"
databases = ["prod", "staging"]
sha256 = "{A}"

# The chat bot only reads.
[tokens.chat-bot]
role = "viewer"
sha256 = "{B}"
"""


def migctl(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    return subprocess.run(
        [MIGCTL, *args], env={**clean, **environ}, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS_FILE)
    path.chmod(0o640)
    return path


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield name, child
                yield from subcommands(child)


def test_version_prints_the_package_version() -> None:
    result = migctl("--version")
    assert (result.returncode, result.stdout) == (0, f"migctl {__version__}\n")


def test_help_lists_every_command_on_one_line_with_what_it_does() -> None:
    result = migctl("--help")
    assert result.returncode == 0
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    for choice in commands._choices_actions:
        lines = [line for line in result.stdout.splitlines() if line.split()[:1] == [choice.dest]]
        assert lines == [f"    {choice.dest:<18}{choice.help}"], choice.dest


def test_every_command_action_and_argument_has_help_text() -> None:
    parsers = [("migctl", _parser()), *subcommands(_parser())]
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), name
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, (name, action.dest)


def test_token_create_json_gives_scripts_the_token_its_hash_and_its_entry() -> None:
    result = migctl("token", "create", "--name", "ci", "--role", "viewer", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert set(created) == {"name", "token", "sha256", "toml"}
    assert created["sha256"] == hashlib.sha256(created["token"].encode()).hexdigest()
    entry = tomllib.loads(created["toml"])["tokens"]["ci"]
    assert entry == {"role": "viewer", "sha256": created["sha256"]}


def test_token_create_file_adds_the_entry_and_keeps_comments_and_permissions(
    tokens_file: Path,
) -> None:
    result = migctl(
        "token", "create", "--name", "portal.v2", "--role", "viewer", "--database", "prod",
        "--file", str(tokens_file), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    text = tokens_file.read_text()
    assert text.startswith(TOKENS_FILE)  # every comment and line of the file, untouched
    assert tomllib.loads(text)["tokens"]["portal.v2"] == {
        "role": "viewer",
        "databases": ["prod"],
        "sha256": created["sha256"],
    }
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o640
    assert [p.name for p in tokens_file.parent.iterdir()] == ["tokens.toml"]  # no temp left


def test_token_create_refuses_a_name_that_exists_unless_told_to_replace_it(
    tokens_file: Path,
) -> None:
    args = ("token", "create", "--name", "chat-bot", "--role", "admin", "--write")
    refused = migctl(*args, MIGCTL_TOKENS_FILE=str(tokens_file))
    assert refused.returncode == 1
    assert "has a token named 'chat-bot' already: pass --replace" in refused.stderr
    assert tokens_file.read_text() == TOKENS_FILE
    replaced = migctl(*args, "--replace", "--json", MIGCTL_TOKENS_FILE=str(tokens_file))
    assert replaced.returncode == 0, replaced.stderr
    text = tokens_file.read_text()
    assert "# The chat bot only reads." in text and "# the release pipeline" in text
    entry = tomllib.loads(text)["tokens"]["chat-bot"]
    assert entry == {"role": "admin", "sha256": json.loads(replaced.stdout)["sha256"]}


def test_token_create_write_needs_a_tokens_file() -> None:
    result = migctl("token", "create", "--name", "ci", "--role", "viewer", "--write")
    assert result.returncode == 2
    assert "pass --file PATH or set MIGCTL_TOKENS_FILE" in result.stderr


def test_token_list_shows_names_roles_and_databases_but_never_hashes(tokens_file: Path) -> None:
    listed = migctl("token", "list", MIGCTL_TOKENS_FILE=str(tokens_file))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[1:3] == [
        "chat-bot   viewer    (all)",
        "ci-deploy  operator  prod, staging",
    ]
    as_json = migctl("token", "list", "--json", "--file", str(tokens_file))
    assert json.loads(as_json.stdout) == [
        {"name": "chat-bot", "role": "viewer", "databases": None},
        {"name": "ci-deploy", "role": "operator", "databases": ["prod", "staging"]},
    ]
    for output in (listed.stdout, as_json.stdout):
        assert A not in output and B not in output


def test_token_revoke_removes_the_entry_and_keeps_the_next_ones_comment(
    tokens_file: Path,
) -> None:
    result = migctl("token", "revoke", "ci-deploy", "--file", str(tokens_file))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("revoked ci-deploy in ")
    assert tokens_file.read_text() == (
        "# Tokens of the shop's migctl. Ask #platform before adding one.\n\n"
        "# The chat bot only reads.\n"
        "[tokens.chat-bot]\n"
        'role = "viewer"\n'
        f'sha256 = "{B}"\n'
    )
    assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o640


def test_token_revoke_takes_the_comment_right_above_the_entry_along(tokens_file: Path) -> None:
    assert migctl("token", "revoke", "chat-bot", "--file", str(tokens_file)).returncode == 0
    kept, _ = TOKENS_FILE.split("# The chat bot only reads.")
    assert tokens_file.read_text() == kept


def test_token_revoke_of_an_unknown_name_fails_and_names_those_there_are(
    tokens_file: Path,
) -> None:
    result = migctl("token", "revoke", "ci-deplyo", MIGCTL_TOKENS_FILE=str(tokens_file))
    assert result.returncode == 1
    assert "has no token named 'ci-deplyo' (it has: chat-bot, ci-deploy)" in result.stderr
    assert tokens_file.read_text() == TOKENS_FILE


def test_a_running_server_accepts_a_created_token_and_refuses_it_once_revoked(
    tokens_file: Path, tmp_path: Path
) -> None:
    server = serve(tmp_path, {"MIGCTL_TOKENS_FILE": str(tokens_file)})
    url = next(server)
    try:
        wait_for(f"{url}/health/live")
        created = migctl(
            "token", "create", "--name", "pipeline", "--role", "operator", "--write", "--json",
            MIGCTL_TOKENS_FILE=str(tokens_file),
        )  # fmt: skip
        token = json.loads(created.stdout)["token"]
        assert status_with(f"{url}/api/v1/databases", token) == 200
        assert migctl("token", "revoke", "pipeline", "--file", str(tokens_file)).returncode == 0
        assert status_with(f"{url}/api/v1/databases", token) == 401
    finally:
        next(server, None)


def status_with(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
