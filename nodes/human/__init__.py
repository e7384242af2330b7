"""`human.approval` (importing the package registers it)."""

from nodes.human import approval  # noqa: F401
