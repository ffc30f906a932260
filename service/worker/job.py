"""`python -m service.worker.job <worker id> [<operation id>]`: run one claimed operation.

A child process of the worker, so that a crash, sys.exit(), a hung import or a logging
takeover in a project's env.py never kills or corrupts the worker itself. Without an
operation id it starts, imports everything and waits for the id on stdin: the worker keeps
one such spare ready, so a claimed operation does not wait for Python to start.
"""

from __future__ import annotations

import logging
import sys

from service.lifecycle import Status
from service.services.execution import run_claimed
from service.services.redaction import log_redaction
from service.services.wiring import build_services
from service.settings import Settings

EXIT_FAILED, EXIT_LOST = 1, 3


def main(argv: list[str]) -> int:
    worker_id = argv[0]
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s job: %(message)s")
    log_redaction(settings)  # a revision may log what it reads from the environment
    services = build_services(settings)
    given = argv[1] if len(argv) > 1 else sys.stdin.readline().strip()
    if not (given.isascii() and given.isdigit()):
        return EXIT_LOST  # the worker stopped before handing an operation over
    try:
        status = run_claimed(
            services.registry,
            services.store,
            int(given),
            worker_id,
            settings.job_start_timeout_seconds,
        )
    finally:
        services.close()
    if status is None:
        return EXIT_LOST
    return 0 if status == Status.SUCCEEDED else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
