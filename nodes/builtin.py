"""Imports every built-in node module so each registers itself."""

from nodes import agent, control, http, human, memory_nodes, openvino_nodes, sql, tools, webhook  # noqa: F401
