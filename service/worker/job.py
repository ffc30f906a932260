"""`python -m service.worker.job <operation id> <worker id>`: run one claimed operation.

A child process of the worker, so that a crash, sys.exit(), a hung import or a logging
takeover in a project's env.py never kills or corrupts the worker itself.
"""

from __future__ import annotations

import logging
import sys

from service.services.execution import run_claimed
from service.services.registry import Registry
from service.settings import Settings
from service.store.db import ControlStore

EXIT_CODES = {"succeeded": 0, "failed": 1, "lost": 3}


def main(argv: list[str]) -> int:
    operation_id, worker_id = int(argv[0]), argv[1]
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s job: %(message)s")
    registry = Registry(settings)
    store = ControlStore(settings.control_database_url.reveal())
    try:
        status = run_claimed(registry, store, operation_id, worker_id)
    finally:
        registry.close()
        store.dispose()
    return EXIT_CODES.get(status, 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
