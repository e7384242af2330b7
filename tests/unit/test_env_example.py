""".env.example lists every setting with its default and description, and is what the model says today."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import Field

from engine.env_example import ENV_EXAMPLE_PATH, UndescribedSetting, entry, env_example_text, env_name
from engine.settings import Settings


def test_env_example_is_up_to_date() -> None:
    stale = ".env.example is stale; refresh it with: python -m engine.env_example"
    assert ENV_EXAMPLE_PATH.read_text(encoding="utf-8") == env_example_text(), stale


def test_every_setting_is_listed_once_with_a_description() -> None:
    text = env_example_text()
    listed = re.findall(r"^# (FLOWLOOM_[A-Z0-9_]+)=", text, flags=re.M)
    assert listed == [env_name(name) for name in Settings.model_fields]
    assert "# FLOWLOOM_WORKERS=2\n" in text and "# FLOWLOOM_ADMIN_EMAILS=[]\n" in text
    assert "# FLOWLOOM_OPENVINO_TELEMETRY=false\n" in text


def test_uncommented_the_example_gives_exactly_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text(re.sub(r"^# (FLOWLOOM_)", r"\1", env_example_text(), flags=re.M), encoding="utf-8")

    from_file = Settings(_env_file=dotenv)

    assert from_file.model_dump() == Settings(_env_file=None).model_dump()
    assert from_file.model_fields_set == set(Settings.model_fields)  # every line was read


def test_a_setting_without_a_description_is_refused() -> None:
    with pytest.raises(UndescribedSetting, match="Settings.mystery has no description"):
        entry("mystery", Field(3))
