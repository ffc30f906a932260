"""The worker's webhook courier: a thread that delivers due outbox rows until the worker stops."""

from __future__ import annotations

import logging
import threading
import time

from service.errors import MigctlError
from service.retrying import Outage
from service.services import webhooks
from service.services.control import DATABASE_ERRORS, ControlStore
from service.services.webhook_file import WebhooksFile

logger = logging.getLogger(__name__)
POLL_SECONDS = 0.5
PRUNE_EVERY_SECONDS = 3600.0
TROUBLE: tuple[type[Exception], ...] = (MigctlError, *DATABASE_ERRORS)


class Courier:
    """Delivers webhooks beside the claim loop, so a slow receiver never delays a migration."""

    def __init__(self, store: ControlStore, hooks: WebhooksFile, stopping: threading.Event) -> None:
        self.store, self.hooks, self.stopping = store, hooks, stopping
        self.thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        # a control-database outage is logged once and its end once, not every poll
        self.outage = Outage(logger, "webhook deliveries", logging.WARNING)

    def __enter__(self) -> Courier:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.thread.join(timeout=5)

    def _run(self) -> None:
        pruned_at = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() - pruned_at > PRUNE_EVERY_SECONDS:
                    webhooks.prune(self.store)
                    pruned_at = time.monotonic()
                sent = webhooks.deliver_due(self.store, self.hooks)
            except TROUBLE as exc:  # an outage: the rows wait
                self.outage.failed(exc)
                sent = 0
            else:
                self.outage.recovered()
            if not sent:
                self.stopping.wait(POLL_SECONDS)
