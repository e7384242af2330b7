"""Node types: each module registers one family of nodes with the registry."""
