"""GET /api/health: database, Redis and Celery workers, each with a fix when it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.schemas import CheckPublic, HealthPublic
from engine.health import CheckResult, check_database, check_redis, check_workers
from engine.settings import get_settings

router = APIRouter(tags=["health"])


async def _run_check(check: Callable[..., CheckResult], *args: Any, **kwargs: Any) -> CheckPublic:
    # Checks block on network timeouts: run them in threads, side by side.
    result = await run_in_threadpool(check, *args, **kwargs)
    return CheckPublic.model_validate(result)


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "At least one check failed"}},
)
async def health(response: Response) -> HealthPublic:
    """Whether the database, Redis and at least one worker answer (503 when any does not)."""
    settings = get_settings()
    results = await asyncio.gather(
        _run_check(check_database, settings.database_url),
        _run_check(check_redis, settings.redis_url),
        _run_check(check_workers, settings.redis_url, timeout=2.0),
    )
    checks = dict(zip(("database", "redis", "workers"), results, strict=True))
    healthy = all(check.ok for check in results)
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthPublic(status="ok" if healthy else "degraded", checks=checks)
