"""`tool.code`: Python written in the workflow, run in a sandbox (importing the package registers it)."""

from nodes.code import code_node  # noqa: F401
