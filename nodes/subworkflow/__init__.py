"""`subworkflow`: run another saved workflow at a pinned version (importing the package registers it)."""

from nodes.subworkflow import subworkflow  # noqa: F401
