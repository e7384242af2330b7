"""The Celery application, built by a function: broker from settings, tasks acked late and rejected on worker loss.

No app is created at import time. The worker builds its own (`engine.tasks.create_worker_app`, with
the engine's tasks registered on it); senders use `current_celery()`, a cached app that is never set
as Celery's current app, so building one (in tests, say) does not replace the app a process runs.
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from engine.settings import get_settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:56379/0"
# Senders (web, triggers, the CLI, a worker sending the next step) give up on the broker quickly:
# the step is recorded in PostgreSQL before its message leaves, and a message that could not
# leave is sent by the sweeper once the broker answers (engine/dispatch.py). One immediate retry
# covers a pooled connection the broker closed when it restarted.
SEND_TIMEOUT_S = 1.0
SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def broker_for(redis_url: str) -> str:
    """Where step messages go: FLOWLOOM_BROKER_URL (RabbitMQ, say) if set, else the Redis at `redis_url`."""
    return get_settings().broker_url or redis_url


def create_celery(redis_url: str | None = None, *, set_as_current: bool = True) -> Celery:
    """A Celery app on the settings' broker (FLOWLOOM_BROKER_URL, else the settings' Redis or
    `redis_url`), with no tasks registered; results (rarely kept) stay in Redis either way."""
    settings = get_settings()
    url = redis_url or settings.redis_url or DEFAULT_REDIS_URL
    app = Celery("flowloom", broker=broker_for(url), backend=url, set_as_current=set_as_current)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=settings.queue,
    )
    return app


@lru_cache(maxsize=4)
def celery_for(redis_url: str, broker_url: str = "") -> Celery:
    """A cached app for sending to `redis_url` (settings may be set after import, e.g. in tests),
    with short broker timeouts and one retry (SEND_TIMEOUT_S, SEND_RETRY_POLICY).

    `broker_url` (what broker_for says) is part of the cache key only: a changed
    FLOWLOOM_BROKER_URL gets an app of its own."""
    app = create_celery(redis_url, set_as_current=False)
    app.conf.update(task_publish_retry_policy=SEND_RETRY_POLICY)
    if str(app.conf.broker_url).startswith("redis"):  # redis://, rediss://, redis+socket://
        # A Redis that is down refuses at once; one that hangs (stopped, a dead link) would keep
        # a publish waiting forever without a socket timeout (kombu's default is none).
        app.conf.broker_transport_options = {
            **app.conf.broker_transport_options,
            "socket_timeout": SEND_TIMEOUT_S,
            "socket_connect_timeout": SEND_TIMEOUT_S,
        }
    else:  # AMQP: how long opening a connection to RabbitMQ may take
        app.conf.broker_connection_timeout = SEND_TIMEOUT_S
    return app


def current_celery() -> Celery:
    """The app for sending to the broker the current settings name."""
    url = get_settings().redis_url or DEFAULT_REDIS_URL
    return celery_for(url, broker_for(url))
