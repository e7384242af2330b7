"""The rooms keep their arrows: the execution core never imports operations (engine.ops)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def core_modules() -> list[str]:
    """Every module of the engine package outside engine.ops (found on disk, so new ones count too)."""
    names = []
    for info in pkgutil.walk_packages(engine.__path__, prefix="engine."):
        if info.name != "engine.ops" and not info.name.startswith("engine.ops."):
            names.append(info.name)
    return sorted(names)


def modules_loaded_by(imports: list[str]) -> list[str]:
    """The modules a fresh interpreter has loaded after importing `imports`."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {imports!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_the_execution_core_imports_nothing_from_engine_ops() -> None:
    core = core_modules()
    assert {"engine.executor", "engine.tasks", "engine.dispatch", "engine.celery_app"} <= set(core)
    loaded = modules_loaded_by(core)
    assert [m for m in loaded if m == "engine.ops" or m.startswith("engine.ops.")] == []


def test_the_ops_room_holds_the_cli_launcher_services_health_and_migrations() -> None:
    loaded = modules_loaded_by(["engine.ops.cli"])
    assert "engine.ops.cli_workflows" in loaded
    ops_files = {path.stem for path in (REPO_ROOT / "engine" / "ops").glob("*.py")}
    moved = {"cli", "cli_workflows", "launcher", "services", "health", "migrate"}
    assert moved | {"embedded_postgres", "embedded_redis"} <= ops_files
    assert not [name for name in moved if (REPO_ROOT / "engine" / f"{name}.py").exists()]
