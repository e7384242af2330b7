"""Sessions on Flowloom's own database for the web app's pages and routes.

What they read and change goes through the engine's doors (engine.workflows, engine.runs,
engine.approvals, engine.audit) or app.auth's modules; an event handler or request opens a
session here, calls one of those, commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlmodel import Session

from engine.errors import ConfigError
from engine.settings import get_settings
from models.db import session_scope


def database_url() -> str:
    """The configured database URL; refuses to guess when it is missing."""
    url = get_settings().database_url
    if not url:
        raise ConfigError(
            "FLOWLOOM_DATABASE_URL is not set: start the app with `flowloom up` "
            "(embedded PostgreSQL) or set it to a PostgreSQL URL"
        )
    return url


@contextmanager
def db_session() -> Iterator[Session]:
    """A session on the app's database that commits on success."""
    with session_scope(database_url()) as session:
        yield session
