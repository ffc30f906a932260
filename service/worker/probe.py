"""`python -m service.worker.probe <database>`: print a database's heads as JSON.

The worker runs no project code itself: reading heads goes through env.py, which may hang
or exit, so it happens in a child process with a timeout.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from service.services.execution import heads_now
from service.services.wiring import build_services
from service.settings import Settings

logger = logging.getLogger(__name__)


def read_heads_in_child(database: str, timeout: float) -> list[str] | None:
    """The database's heads, or None when they cannot be read within `timeout` seconds."""
    command = [sys.executable, "-m", "service.worker.probe", database]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        heads = json.loads(result.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        logger.warning("cannot read the heads of %s: %s", database, type(exc).__name__)
        return None
    return None if heads is None else [str(head) for head in heads]


def main(database: str) -> None:
    services = build_services(Settings.from_env())
    try:
        print(json.dumps(heads_now(services.registry)(database)))
    finally:
        services.close()


if __name__ == "__main__":
    main(sys.argv[1])
