"""The API app as the streaming tests serve it with granian: keep-alive comments every half second."""

from __future__ import annotations

from app.api import run_stream
from app.api.main import api

run_stream.KEEPALIVE_S = 0.5

__all__ = ["api"]
