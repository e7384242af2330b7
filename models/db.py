"""Engine and session factory: one SQLAlchemy engine per process and database URL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache, partial

from sqlalchemy import Engine, create_engine
from sqlmodel import Session


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, **kwargs) -> Engine:
    """A new engine for `url` (pool sized for a worker process)."""
    # No pre-ping: it costs a round trip per checkout on the engine's hot path; stale connections
    # are recycled instead, and a step that meets a dropped connection is resent by the sweeper.
    kwargs.setdefault("pool_recycle", 300)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    # JSONB values that are not plain JSON (a datetime in a step's output) are stored as strings.
    kwargs.setdefault("json_serializer", partial(json.dumps, default=str))
    return create_engine(normalise_url(url), **kwargs)


@lru_cache(maxsize=8)
def _engine_for(url: str, pid: int) -> Engine:
    return make_engine(url)


def get_engine(url: str) -> Engine:
    """The process-wide engine for `url`; a forked child gets its own pool."""
    return _engine_for(url, os.getpid())


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
