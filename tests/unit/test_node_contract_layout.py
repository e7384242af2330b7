"""The node contract's arrows: the engine never imports a node module, nodes see only the contract.

Read from the source (every import statement, in functions too), so a new module counts as soon
as it exists.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_FAMILIES = (
    "control",
    "tools",
    "http",
    "sql",
    "human",
    "webhook",
    "agent",
    "openvino",
    "memory",
    "subworkflow",
)


def imports_of(path: Path) -> list[str]:
    """Every module `path` imports (absolute names; relative imports are not used in this tree)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def sources(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


def is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_no_engine_module_imports_a_node_module() -> None:
    offenders = {
        str(p.relative_to(REPO_ROOT)): [n for n in imports_of(p) if is_under(n, "nodes")]
        for p in sources("engine")
    }
    assert {p: names for p, names in offenders.items() if names} == {}


def test_nodes_import_only_the_contract_of_the_engine_and_never_app_or_another_family() -> None:
    bad: dict[str, list[str]] = {}
    for path in sources("nodes"):
        parts = path.relative_to(REPO_ROOT / "nodes").parts
        family = parts[0] if len(parts) > 1 else ""
        for name in imports_of(path):
            wrong_engine = is_under(name, "engine") and not is_under(name, "engine.contract")
            ui = is_under(name, "app") or is_under(name, "components")
            other_family = (
                is_under(name, "nodes") and name != "nodes" and not is_under(name, f"nodes.{family}")
            )
            if wrong_engine or ui or other_family:
                bad.setdefault(str(path.relative_to(REPO_ROOT)), []).append(name)
    assert bad == {}


def test_every_family_is_a_package_and_nodes_holds_no_loose_modules() -> None:
    root = REPO_ROOT / "nodes"
    assert sorted(p.name for p in root.glob("*.py")) == ["__init__.py"]
    assert all((root / family / "__init__.py").exists() for family in NODE_FAMILIES)


def test_the_app_and_components_reach_node_types_through_the_contract() -> None:
    offenders = {
        str(p.relative_to(REPO_ROOT)): [n for n in imports_of(p) if is_under(n, "nodes")]
        for p in sources("app") + sources("components")
    }
    assert {p: names for p, names in offenders.items() if names} == {}
