"""`GET /metrics`: the Prometheus exposition of every Flowloom process (engine/metrics.py).

For admins (a session or an admin's API key) and for a scraper holding FLOWLOOM_METRICS_TOKEN
(`Authorization: Bearer <token>`); the auth gate decides (app.auth.policy: Role.ADMIN, and
SCRAPE_TOKEN_ROUTES for the token), everyone else is refused there.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from app.db import database_url
from engine import metrics
from engine.settings import get_settings
from models.db import get_engine

router = APIRouter(tags=["operations"])
METRICS_PATH = "/metrics"


@router.get(METRICS_PATH, response_class=Response, responses={200: {"content": {metrics.CONTENT_TYPE: {}}}})
async def prometheus_metrics() -> Response:
    """Every process's counters and histograms, the database gauges and the circuit breakers, in
    Prometheus' text format."""
    settings = get_settings()
    body = await run_in_threadpool(
        metrics.render, get_engine(database_url()), outbox=bool(settings.kafka_bootstrap_servers)
    )
    return Response(body, media_type=metrics.CONTENT_TYPE)
