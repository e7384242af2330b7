"""Imports every built-in node module so each registers itself."""

from nodes import control  # noqa: F401
