"""Security tests use the integration fixtures (real PostgreSQL, Redis, Celery workers, signed-in callers)."""

from tests.integration.conftest import *  # noqa: F401,F403
