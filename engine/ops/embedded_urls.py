"""Empty service URLs mean the embedded PostgreSQL and Redis: what a long-running command does about it."""

from __future__ import annotations

import os

from engine.ops.embedded_postgres import embedded_database_url
from engine.ops.embedded_redis import embedded_redis_url
from engine.settings import Settings, get_settings


def use_embedded_services(settings: Settings) -> None:
    """Put the embedded services' URLs in the environment where `settings` leaves a URL empty.

    The settings are then read again from the environment (the cache is cleared), and the processes
    the command starts (a worker's pool, a run's first steps on the broker) inherit the same URLs.
    """
    if not settings.database_url:
        os.environ["FLOWLOOM_DATABASE_URL"] = embedded_database_url(settings)
    if not settings.redis_url:
        os.environ["FLOWLOOM_REDIS_URL"] = embedded_redis_url(settings)
    get_settings.cache_clear()
