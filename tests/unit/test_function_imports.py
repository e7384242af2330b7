"""No module hides an import of the project's own code inside a function, except the few listed here.

Read from the source (the AST of every module under app/ components/ nodes/ engine/ models/), so a
new module counts as soon as it exists. Imports under `if TYPE_CHECKING:` are fine; so is importing
a third-party library late (an optional extra, a heavy one used by one function).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOTS = ("app", "components", "nodes", "engine", "models")
_CLI_STARTUP = (
    "a subcommand imports only what it runs: all of them together load Alembic, Celery, psycopg and "
    "every node plug-in, and `flowloom --help` would take 4 s instead of 0.5 s"
)
# (module path, function) -> why the function imports late.
ALLOWED: dict[tuple[str, str], str] = {
    ("engine/ops/cli.py", "run_up"): _CLI_STARTUP,
    ("engine/ops/cli.py", "run_worker"): _CLI_STARTUP,
    ("engine/ops/cli.py", "run_migrate"): _CLI_STARTUP,
    ("engine/ops/cli.py", "run_doctor"): _CLI_STARTUP,
    ("engine/ops/cli_workflows.py", "run_validate"): _CLI_STARTUP,
    ("engine/ops/cli_workflows.py", "run_run"): _CLI_STARTUP,
    ("engine/ops/cli_workflows.py", "_worker_available"): _CLI_STARTUP,
    ("engine/ops/cli_workflows.py", "_run_and_watch"): _CLI_STARTUP,
    ("engine/ops/cli_relay.py", "run_relay"): _CLI_STARTUP,
    ("engine/ops/cli_kafka_triggers.py", "run_kafka_triggers"): _CLI_STARTUP,
    ("engine/ops/cli_scheduler.py", "run_scheduler"): _CLI_STARTUP,
    ("engine/ops/cli_web.py", "run_web"): _CLI_STARTUP,
    ("app/cli.py", "run_set_password"): _CLI_STARTUP,
}
_DYNAMIC_IMPORTS = {"import_module", "__import__"}


def _ours(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in ROOTS


def _is_type_checking(test: ast.expr) -> bool:
    return isinstance(test, ast.Name | ast.Attribute) and ast.unparse(test).endswith("TYPE_CHECKING")


def _imported(node: ast.AST) -> list[str]:
    """The project modules `node` imports (relative imports count as ours), [] for anything else."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if _ours(a.name)]
    if isinstance(node, ast.ImportFrom):
        return [f"{'.' * node.level}{node.module or ''}"] if node.level or _ours(node.module) else []
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        target = node.args[0].value
        if name in _DYNAMIC_IMPORTS and isinstance(target, str) and _ours(target):
            return [target]
    return []


def function_imports(source: str, filename: str = "<source>") -> list[tuple[str, int, str]]:
    """(outermost function, line, module) for each import of our code inside a function body."""
    found: list[tuple[str, int, str]] = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for branch in child.orelse:
                    visit(branch, function)
                continue
            inner = function
            if not function and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = getattr(child, "name", "<lambda>")
            if function:
                found.extend((function, child.lineno, module) for module in _imported(child))
            visit(child, inner)

    visit(ast.parse(source, filename=filename), "")
    return found


@cache
def every_function_import() -> dict[tuple[str, str], list[str]]:
    """(module path, function) -> the `line: module` imports it hides, over the whole tree."""
    found: dict[tuple[str, str], list[str]] = {}
    for root in ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            rel = path.relative_to(REPO_ROOT).as_posix()
            for function, line, module in function_imports(path.read_text(), rel):
                found.setdefault((rel, function), []).append(f"{line}: {module}")
    return found


def test_no_function_imports_the_projects_own_modules_except_the_listed_few() -> None:
    hidden = {key: lines for key, lines in every_function_import().items() if key not in ALLOWED}
    assert hidden == {}, (
        "move the import to the top; if it dodges a cycle, move the shared piece down a layer"
    )


def test_every_allowed_late_import_still_exists_and_says_why() -> None:
    assert set(ALLOWED) <= set(every_function_import()), "drop entries that no longer import late"
    assert all(reason.strip() for reason in ALLOWED.values())


def test_the_finder_flags_a_hidden_import_and_spares_type_checking_and_libraries() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import engine.errors\n"
        "if TYPE_CHECKING:\n"
        "    from engine.runs import RunView\n"
        "def handler():\n"
        "    import json\n"
        "    from engine.executor import claim_step\n"
        "    if TYPE_CHECKING:\n"
        "        from engine.plan import Plan\n"
        "    def inner():\n"
        "        from . import sibling\n"
        "    return importlib.import_module('nodes.http')\n"
        "class Page:\n"
        "    async def load(self):\n"
        "        import models.tables\n"
    )
    assert function_imports(source) == [
        ("handler", 7, "engine.executor"),
        ("handler", 11, "."),
        ("handler", 12, "nodes.http"),
        ("load", 15, "models.tables"),
    ]
