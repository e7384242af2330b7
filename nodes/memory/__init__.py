"""Long-term memory in pgvector: `memory.ingest` and `memory.search` (importing the package registers them)."""

from nodes.memory import knowledge, memory_nodes  # noqa: F401
