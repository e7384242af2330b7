"""Ids from the outside world: a UUID out of a URL, a form field or a message, or None."""

from __future__ import annotations

import uuid
from typing import Any


def parse_id(value: Any) -> uuid.UUID | None:
    """The UUID in `value`, or None when it is not one (a mistyped URL)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None
