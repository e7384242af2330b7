"""Celery tasks of the engine (filled in by the executor)."""

from engine.celery_app import celery_app


@celery_app.task(name="flowloom.ping")
def ping() -> str:
    """A no-op used by health checks and the benchmark's baseline."""
    return "pong"
