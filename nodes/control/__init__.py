"""Flow control: start, end, condition, merge and delay (importing the package registers them)."""

from nodes.control import control  # noqa: F401
