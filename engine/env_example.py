"""`.env.example`: every setting of engine.settings.Settings with its default and description.

Generated from the model, so it cannot drift: `python -m engine.env_example` rewrites the file and
tests/unit/test_env_example.py fails when it is stale.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from engine.settings import Settings

ENV_EXAMPLE_PATH = Path(__file__).resolve().parent.parent / ".env.example"
WIDTH = 100
HEADER = """\
# Flowloom's settings: every FLOWLOOM_* environment variable, with its default.
# Copy this file to .env in the directory you start Flowloom from and uncomment what you change;
# a variable set in the environment wins over .env. Lists and objects are JSON.
# Generated from engine/settings.py by `python -m engine.env_example` (a test fails when stale).
"""


class UndescribedSetting(ValueError):
    """A field of Settings has no description: the example would list it without saying what it is."""


def env_name(field_name: str) -> str:
    """The environment variable of a Settings field."""
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{field_name}".upper()


def render_default(value: Any) -> str:
    """A default as it is written in a .env file (JSON for lists, objects and booleans)."""
    if isinstance(value, SecretStr):
        if value.get_secret_value():
            raise ValueError("a secret setting must not have a default value")
        return ""
    if isinstance(value, bool | list | dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bounds(field: FieldInfo) -> str:
    """'; at least 1', '; more than 0', '; matching ^...$' from the field's constraints, or ''."""
    said = []
    for item in field.metadata:
        if isinstance(item, Ge):
            said.append(f"at least {render_default(item.ge)}")
        elif isinstance(item, Gt):
            said.append(f"more than {render_default(item.gt)}")
        elif getattr(item, "pattern", None):
            said.append(f"matching {item.pattern}")
    return "".join(f"; {part}" for part in said)


def entry(name: str, field: FieldInfo) -> str:
    """One setting: its description as comment lines, then the variable with its default, commented out."""
    if not field.description:
        raise UndescribedSetting(f"Settings.{name} has no description; add Field(..., description=...)")
    text = field.description + _bounds(field)
    comment = textwrap.fill(text, WIDTH, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)
    default = render_default(field.get_default(call_default_factory=True))
    return f"{comment}\n# {env_name(name)}={default}\n"


def env_example_text() -> str:
    """The exact text of .env.example."""
    return HEADER + "".join("\n" + entry(name, field) for name, field in Settings.model_fields.items())


if __name__ == "__main__":
    ENV_EXAMPLE_PATH.write_text(env_example_text(), encoding="utf-8")
