"""The composition root: what the API, the worker and the CLI run on, built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from service.services.previews import PreviewCache, preview_cache
from service.services.registry import Registry
from service.settings import Settings
from service.store.db import ControlStore


@dataclass(frozen=True)
class Services:
    """Everything a use case needs, made from the settings; nothing connects until used."""

    settings: Settings
    registry: Registry
    store: ControlStore
    previews: PreviewCache

    def close(self) -> None:
        self.registry.close()
        self.store.dispose()


def build_services(settings: Settings) -> Services:
    return Services(
        settings=settings,
        registry=Registry(settings),
        store=ControlStore(settings.control_database_url.reveal()),
        previews=preview_cache(settings.preview_cache_mb * 1024 * 1024),
    )
