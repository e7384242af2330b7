"""How a page's State reads what it lists: a database that is away becomes the page's error callout
(and a log line), the page stays up, and the page counts as loaded either way."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from engine.db_errors import DB_ERRORS, describe_db_error

log = logging.getLogger(__name__)


class ListingState(Protocol):
    """A page State with an error callout and a first-load flag."""

    error: str
    loaded: bool


@contextmanager
def reading(state: ListingState, what: str, **cleared: Any) -> Iterator[None]:
    """Run the block's reads; on a database error set `cleared` (field=value) and show the error."""
    try:
        yield
        state.error = ""
    except DB_ERRORS as exc:
        log.warning("loading %s failed: %s", what, exc)
        for name, value in cleared.items():
            setattr(state, name, value)
        state.error = describe_db_error(exc)
    state.loaded = True
