"""The layer contracts in pyproject.toml hold: `lint-imports` keeps every one, and no module is in an import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOTS = ("app", "components", "nodes", "engine", "models")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """`lint-imports` from the venv on the checkout at `cwd` (no cache left in the tree)."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of modules that import each other in a circle (a package and its own modules too)."""
    digraph = nx.DiGraph()
    for module in graph.modules:
        digraph.add_edges_from(
            (module, imported) for imported in graph.find_modules_directly_imported_by(module)
        )
    return sorted(sorted(group) for group in nx.strongly_connected_components(digraph) if len(group) > 1)


def test_every_import_contract_is_kept() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert " broken" in result.stdout and "0 broken" in result.stdout


def test_no_module_of_ours_is_in_an_import_cycle() -> None:
    assert import_cycles(grimp.build_graph(*ROOTS, cache_dir=None)) == []


def test_the_cycle_finder_sees_a_circle() -> None:
    graph = grimp.ImportGraph()
    for module in ("engine", "engine.a", "engine.b", "engine.c"):
        graph.add_module(module)
    graph.add_import(importer="engine.a", imported="engine.b")
    graph.add_import(importer="engine.b", imported="engine.a")
    graph.add_import(importer="engine.c", imported="engine.a")
    assert import_cycles(graph) == [["engine.a", "engine.b"]]
