"""The `agent` node and its language-model providers (importing the package registers them)."""

from nodes.agent import agent  # noqa: F401
