"""Node plug-ins found through the `flowloom.nodes` entry points: modules, callables, and broken ones skipped.

Each test puts a small distribution (a `.dist-info` folder with `entry_points.txt`, and its
modules) on sys.path, as pip would install it, and loads the plug-ins again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from engine.contract import ENTRY_POINT_GROUP, all_node_types, failed_plugins, get_node_type, registry

CALLABLE_PLUGIN = """
from engine.contract import Port, register


def register_all():
    @register("plugin_test.shout", category="tool", label="Shout", outputs={"out": Port("text")})
    def shout(ctx, cfg, inputs):
        return {"out": "HEY"}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path that holds installed distributions; the registry forgets them afterwards."""
    all_node_types()  # the built-in families are loaded before the test's plug-ins
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_loaded_entry_points", set(registry._loaded_entry_points))
    monkeypatch.setattr(registry, "_failed", dict(registry._failed))
    yield tmp_path


def install(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)


def test_a_callable_entry_point_is_called_and_registers_its_node_types(site: Path) -> None:
    install(site, "callable_plugin", {"shouting": "plugin_test_callable:register_all"},
            {"plugin_test_callable": CALLABLE_PLUGIN})  # fmt: skip
    assert "shouting" in registry.load_plugins()
    found = get_node_type("plugin_test.shout")
    assert found is not None and found.label == "Shout"


def test_a_broken_plugin_is_skipped_with_an_error_naming_its_entry_point_and_the_others_load(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install(site, "broken_plugin", {"broken": "plugin_test_broken"},
            {"plugin_test_broken": "raise RuntimeError('missing its model file')\n"})  # fmt: skip
    install(
        site, "good_plugin", {"good": "plugin_test_good:register_all"}, {"plugin_test_good": CALLABLE_PLUGIN}
    )
    with caplog.at_level(logging.ERROR, logger="flowloom.plugins"):
        loaded = registry.load_plugins()
    assert loaded == ["good"]
    assert get_node_type("plugin_test.shout") is not None
    message = failed_plugins()["broken"]
    assert "node plug-in 'broken' (plugin_test_broken" in message
    assert "RuntimeError: missing its model file" in message
    assert any("'broken'" in r.getMessage() for r in caplog.records)
    assert get_node_type("tool.http") is not None  # the built-in families are untouched


def test_a_plugin_taking_a_registered_type_name_is_refused_and_the_first_one_stays(site: Path) -> None:
    install(site, "thief_plugin", {"thief": "plugin_test_thief"},
            {"plugin_test_thief": CALLABLE_PLUGIN.replace("plugin_test.shout", "tool.http") + "register_all()\n"})  # fmt: skip
    assert registry.load_plugins() == []
    assert "node type 'tool.http' is already registered" in failed_plugins()["thief"]
    assert get_node_type("tool.http").label == "HTTP request"


def test_each_built_in_family_loads_through_its_entry_point() -> None:
    names = {e.name: e.value for e in entry_points(group=ENTRY_POINT_GROUP)}
    families = [
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
    ]
    assert {f: names.get(f) for f in families} == {f: f"nodes.{f}" for f in families}
    assert not {k: v for k, v in failed_plugins().items() if k in families}
