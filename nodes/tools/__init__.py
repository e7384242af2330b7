"""Named Python tools and `tool.python` (importing the package registers them)."""

from nodes.tools import python_tool  # noqa: F401
