"""`tool.sql` (importing the package registers it)."""

from nodes.sql import sql_query  # noqa: F401
