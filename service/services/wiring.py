"""The composition root: what the API, the worker and the CLI run on, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from service.services.previews import PreviewCache, preview_cache
from service.services.registry import Registry
from service.services.tokens import TokenFile
from service.services.webhook_file import WebhooksFile
from service.services.webhooks import approvers_from, outbox_listener
from service.settings import Settings
from service.store.db import ControlStore


@dataclass(frozen=True)
class Services:
    """Everything a use case needs, made from the settings; nothing connects until used."""

    settings: Settings
    registry: Registry
    store: ControlStore
    previews: PreviewCache
    webhooks: WebhooksFile | None = None  # subscriptions, when MIGCTL_WEBHOOKS_FILE is set

    def close(self) -> None:
        self.registry.close()
        self.store.dispose()


def build_services(settings: Settings) -> Services:
    store = ControlStore(settings.control_database_url.reveal())
    hooks = None
    if settings.webhooks_file is not None:
        hooks = WebhooksFile(settings.webhooks_file, settings.webhooks_environ)
        tokens = TokenFile(settings.tokens_file) if settings.tokens_file else None
        approvers = approvers_from(tokens, hooks)
        store.audit_listeners.append(outbox_listener(hooks, settings, approvers))
    return Services(
        settings=settings,
        registry=Registry(settings),
        store=store,
        previews=preview_cache(settings.preview_cache_mb * 1024 * 1024),
        webhooks=hooks,
    )
