"""`tool.http` (importing the package registers it)."""

from nodes.http import http_request  # noqa: F401
