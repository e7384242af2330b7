"""Health routes, all public: liveness (the process answers), readiness (database and Redis), and the
full check (workers too). Anyone learns ok/degraded, admins the details (docs/operations.md).

Answers to callers other than admins come from app.api.health_cache: each check runs at most once
per CACHE_S seconds in a web process, however many probes arrive. Admins get fresh checks.
"""

from __future__ import annotations

import asyncio
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel

from app.api.health_cache import CheckCache
from app.api.schemas import CheckPublic, HealthPublic
from app.auth.policy import Role, allows
from engine.ops.health import CheckResult, check_database, check_redis, check_workers
from engine.settings import get_settings

router = APIRouter(tags=["health"])
cache = CheckCache()
WORKER_PING_S = 2.0
_DEGRADED = {503: {"model": HealthPublic, "description": "At least one required check failed"}}


class LivePublic(BaseModel):
    """The web process is up: it answered without looking at anything else."""

    status: Literal["ok"] = "ok"


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


async def _checks(request: Request, *, workers: bool) -> dict[str, CheckResult]:
    """Database and Redis (and the workers' ping when asked), side by side; fresh for admins, else cached."""
    settings, fresh = get_settings(), _is_admin(request)
    pending = {
        "database": cache.get(check_database, settings.database_url, fresh=fresh),
        "redis": cache.get(check_redis, settings.redis_url, fresh=fresh),
    }
    if workers:
        pending["workers"] = cache.get(check_workers, settings.redis_url, timeout=WORKER_PING_S, fresh=fresh)
    results = await asyncio.gather(*pending.values())
    return dict(zip(pending, results, strict=True))


def _answer(
    request: Request, response: Response, checks: dict[str, CheckResult], required: tuple[str, ...]
) -> HealthPublic:
    """503 unless every `required` check passed; the checks and versions for admins only."""
    response.headers["Cache-Control"] = "no-store"
    healthy = all(checks[name].ok for name in required)
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    overall = "ok" if healthy else "degraded"
    # Which part is away, by name only, is for signed-in callers: an open page's outage banner says it.
    unavailable = [name for name in required if not checks[name].ok] or None
    if not _is_admin(request):  # hosts, versions and errors help an attacker more than a monitor
        signed_in = getattr(request.state, "principal", None) is not None
        return HealthPublic(status=overall, unavailable=unavailable if signed_in else None)
    details = {name: CheckPublic.model_validate(result) for name, result in checks.items()}
    return HealthPublic(status=overall, unavailable=unavailable, checks=details, versions=_versions())


@router.get("/health/live", response_model=LivePublic)
async def live(response: Response) -> LivePublic:
    """Liveness: the web process answers. Checks nothing else, so a database outage never restarts it."""
    response.headers["Cache-Control"] = "no-store"
    return LivePublic()


@router.get(
    "/health/ready", response_model=HealthPublic, response_model_exclude_none=True, responses=_DEGRADED
)
async def ready(request: Request, response: Response) -> HealthPublic:
    """Readiness: the database and Redis answer (503 when either does not). Workers are not required
    (a web process serves pages and the API without them); admins see their ping among the checks."""
    checks = await _checks(request, workers=_is_admin(request))
    return _answer(request, response, checks, required=("database", "redis"))


@router.get("/health", response_model=HealthPublic, response_model_exclude_none=True, responses=_DEGRADED)
async def health(request: Request, response: Response) -> HealthPublic:
    """The whole installation: the database, Redis and at least one worker answer (503 when any does not)."""
    checks = await _checks(request, workers=True)
    return _answer(request, response, checks, required=("database", "redis", "workers"))
