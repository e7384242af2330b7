"""What a database error means to a person: the one place that turns driver errors into text.

`db_error_reason` keeps the useful part of a driver's message ("connection refused"); the health
checks and migrations put it after what they tried. `describe_db_error` is the whole sentence a
page, a toast or an API answer shows.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import OperationalError, SQLAlchemyError

from engine.errors import FlowloomError, user_message

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
