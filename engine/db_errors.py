"""What a database error means to a person: the one place that turns driver errors into text.

`db_error_reason` keeps the useful part of a driver's message ("connection refused"); the health
checks and migrations put it after what they tried. `describe_db_error` is the whole sentence a
page, a toast or an API answer shows.
"""

from __future__ import annotations

import re

import psycopg
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from engine.errors import ErrorCode, FlowloomError, user_message

# What a page or route catches around database work to show a message instead of crashing.
DB_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError, FlowloomError)


def db_error_reason(exc: BaseException) -> str:
    """The useful part of a driver error: 'connection refused', 'database "x" does not exist'."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = re.sub(r"^\(psycopg\.[\w.]+\)\s*", "", line)
    if "failed: " in line:
        line = line.rsplit("failed: ", 1)[1]
    line = re.sub(r"^(FATAL|ERROR):\s+", "", line).split(": [Errno", 1)[0].strip()
    return line[:1].lower() + line[1:] if line[:2] != line[:2].upper() else line


def describe_db_error(exc: BaseException) -> str:
    """A message for the user: what failed and what to do about it."""
    if isinstance(exc, FlowloomError):
        return user_message(exc)
    if isinstance(exc, OperationalError):
        reason = db_error_reason(exc) if exc.orig is not None else "connection failed"
        return f"The database is unavailable ({reason}); check that PostgreSQL runs and FLOWLOOM_DATABASE_URL"
    return f"A database error occurred ({type(exc).__name__}); see the server log for details"


def outage_cause(exc: BaseException) -> BaseException | None:
    """The exception in `exc`'s chain (itself or what caused it) that says the database cannot be
    reached: a refused or lost connection, a pool that found none in time, `database_unavailable`;
    None for anything else (a statement that failed is not an outage)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PoolTimeout):
            return current
        if isinstance(current, OperationalError):
            # psycopg's own OperationalError is a connection that failed or broke; its subclasses
            # (a deadlock, a lock or statement timeout) are a statement that failed.
            if current.connection_invalidated or type(current.orig) in (psycopg.OperationalError, type(None)):
                return current
        elif type(current) is psycopg.OperationalError:
            return current
        elif isinstance(current, FlowloomError) and current.code == ErrorCode.DATABASE_UNAVAILABLE:
            return current
        current = current.__cause__ or current.__context__
    return None
