"""`python -m service.worker.job <worker id> [<operation id>]`: run one claimed operation.

A child process of the worker, so that a crash, sys.exit(), a hung import or a logging
takeover in a project's env.py never kills or corrupts the worker itself. Without an
operation id it starts, imports everything and waits for the id on stdin: the worker keeps
one such spare ready, so a claimed operation does not wait for Python to start.
"""

from __future__ import annotations

import logging
import sys

from service.services.control import ControlStore
from service.services.execution import run_claimed
from service.services.registry import Registry
from service.settings import Settings

EXIT_CODES = {"succeeded": 0, "failed": 1, "lost": 3}


def main(argv: list[str]) -> int:
    worker_id = argv[0]
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s job: %(message)s")
    registry = Registry(settings)
    store = ControlStore(settings.control_database_url.reveal())
    given = argv[1] if len(argv) > 1 else sys.stdin.readline().strip()
    if not given.isdigit():
        return EXIT_CODES["lost"]  # the worker stopped before handing an operation over
    operation_id = int(given)
    try:
        status = run_claimed(registry, store, operation_id, worker_id)
    finally:
        registry.close()
        store.dispose()
    return EXIT_CODES.get(status, 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
