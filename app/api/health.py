"""GET /api/health: database, Redis and Celery workers; anyone learns ok/degraded, admins the details."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.schemas import CheckPublic, HealthPublic
from app.auth.policy import Role, allows
from engine.ops.health import CheckResult, check_database, check_redis, check_workers
from engine.settings import get_settings

router = APIRouter(tags=["health"])


async def _run_check(check: Callable[..., CheckResult], *args: Any, **kwargs: Any) -> CheckPublic:
    # Checks block on network timeouts: run them in threads, side by side.
    result = await run_in_threadpool(check, *args, **kwargs)
    return CheckPublic.model_validate(result)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("flowloom", "reflex", "celery"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _is_admin(request: Request) -> bool:
    # The route is public, so the auth middleware left the caller (or None) without refusing anyone.
    principal = getattr(request.state, "principal", None)
    return principal is not None and allows(principal.role, Role.ADMIN)


@router.get(
    "/health",
    response_model=HealthPublic,
    response_model_exclude_none=True,
    responses={503: {"model": HealthPublic, "description": "At least one check failed"}},
)
async def health(request: Request, response: Response) -> HealthPublic:
    """Whether the database, Redis and a worker answer (503 when any does not); checks and versions for admins."""
    settings = get_settings()
    results = await asyncio.gather(
        _run_check(check_database, settings.database_url),
        _run_check(check_redis, settings.redis_url),
        _run_check(check_workers, settings.redis_url, timeout=2.0),
    )
    healthy = all(check.ok for check in results)
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    overall = "ok" if healthy else "degraded"
    if not _is_admin(request):  # hosts, versions and errors help an attacker more than a monitor
        return HealthPublic(status=overall)
    checks = dict(zip(("database", "redis", "workers"), results, strict=True))
    return HealthPublic(status=overall, checks=checks, versions=_versions())
