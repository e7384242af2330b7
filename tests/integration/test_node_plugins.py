"""A third-party node package: installed into the venv, found through its entry point, run on a worker.

The example package (examples/flowloom-example-nodes) is installed the way a user would install
one, from a copy of its folder and without the network; it is uninstalled afterwards. Processes
started after the install (the palette's check, the worker) find it only through the
`flowloom.nodes` entry point: nothing in Flowloom names it.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from engine.contract import get_node_type, load_plugins, registry
from engine.runs import start_run
from tests.conftest import REPO_ROOT
from tests.integration.conftest import ENGINE_WORKER_ENV
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow

EXAMPLE = REPO_ROOT / "examples" / "flowloom-example-nodes"
DISTRIBUTION = "flowloom-example-nodes"
MODULE = "flowloom_example_nodes"
NODE_TYPE = "example.reverse_text"
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


@pytest.fixture(scope="module")
def example_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The example package installed into this venv (offline), uninstalled after the module's tests."""
    source = tmp_path_factory.mktemp("plugin") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source)  # the build writes build/ and *.egg-info beside the sources
    subprocess.run(
        [*PIP, "install", "--no-index", "--no-build-isolation", "--no-deps", str(source)], check=True
    )
    with pytest.MonkeyPatch.context() as mp:
        # This process forgets the example again afterwards: it loaded its plug-ins long ago.
        mp.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
        mp.setattr(registry, "_loaded_entry_points", set(registry._loaded_entry_points))
        try:
            yield
        finally:
            subprocess.run([*PIP, "uninstall", "-y", DISTRIBUTION], check=True)
            sys.modules.pop(MODULE, None)


def test_an_installed_node_package_is_in_the_palette_of_a_fresh_process(example_installed: None) -> None:
    code = (
        "import json; from components.palette import canvas_types; "
        f"print(json.dumps(canvas_types().get({NODE_TYPE!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    entry = json.loads(done.stdout.strip().splitlines()[-1])
    assert entry is not None, f"{NODE_TYPE} is not in the palette:\n{done.stderr[-2000:]}"
    assert entry["label"] == "Reverse text (example)"
    assert entry["category"] == "tool"
    assert entry["inputs"]["in"]["type"] == "text" and entry["outputs"]["out"]["type"] == "text"


def test_an_installed_node_package_runs_in_a_workflow_on_a_worker_started_after_the_install(
    example_installed: None, engine_env: None, isolated_broker: str, worker_factory
) -> None:
    importlib.invalidate_caches()
    assert "example" in load_plugins()  # this process validates the definition before it is sent
    assert get_node_type(NODE_TYPE) is not None
    # Only this worker listens on the isolated broker: it started after the install.
    worker_factory(concurrency=1, env={**ENGINE_WORKER_ENV, "FLOWLOOM_REDIS_URL": isolated_broker})
    defn = workflow(
        [
            node("start", "start"),
            node("rev", NODE_TYPE, text="{{ input.word }}", upper=True),
            node("end", "end"),
        ],
        [("start", "rev"), ("rev", "end")],
    )
    view = wait_for_run(start_run(defn, {"word": "flowloom"}))
    assert view.status == "succeeded", view.error
    steps = steps_by_node(view)
    assert steps["rev"]["outputs"] == {"out": "MOOLWOLF"}
    assert view.outputs == {"out": "MOOLWOLF"}
