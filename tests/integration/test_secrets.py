"""The encrypted secrets store on the real database."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import text

from engine import secrets
from engine.errors import StepError
from engine.settings import get_settings
from models.db import get_engine


@pytest.fixture
def store(pg_url: str, clean_db: str, tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A fresh data dir (so a fresh key file) and the session database."""
    monkeypatch.setenv("FLOWLOOM_DATABASE_URL", pg_url)
    monkeypatch.setenv("FLOWLOOM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FLOWLOOM_SECRET_KEY", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _ciphertext(name: str) -> bytes:
    with get_engine(get_settings().database_url).connect() as conn:
        return bytes(
            conn.execute(text("SELECT ciphertext FROM secrets WHERE name = :n"), {"n": name}).scalar_one()
        )


def test_secrets_are_stored_encrypted_and_read_back_by_name(store):
    secrets.set_secret("openai", "sk-live-123456", allowed_destinations=["api.openai.com"], actor="ann")
    assert secrets.get_secret("openai") == "sk-live-123456"
    assert b"sk-live-123456" not in _ciphertext("openai")
    key_file = store / secrets.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    secrets.set_secret("openai", "sk-live-rotated", actor="bob")
    assert secrets.get_secret("openai") == "sk-live-rotated"
    [info] = secrets.list_secrets()
    assert (info.name, info.created_by, info.rotated_by) == ("openai", "ann", "bob")
    assert info.allowed_destinations == ["api.openai.com"]  # rotating the value kept the binding
    assert "sk-live" not in repr(info) and not hasattr(info, "value") and not hasattr(info, "ciphertext")
    assert secrets.delete_secret("openai") is True and secrets.get_secret("openai") is None
    assert secrets.delete_secret("openai") is False


def test_a_configured_secret_key_is_used_and_a_changed_key_is_reported(store, monkeypatch):
    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", "x" * 48)
    get_settings.cache_clear()
    secrets.set_secret("anthropic", "sk-ant-abcdef")
    assert not (store / secrets.KEY_FILE).exists()  # derived from the setting, no key file
    assert secrets.get_secret("anthropic") == "sk-ant-abcdef"

    monkeypatch.setenv("FLOWLOOM_SECRET_KEY", "y" * 48)
    get_settings.cache_clear()
    with pytest.raises(secrets.SecretsError, match="cannot be decrypted with this key"):
        secrets.get_secret("anthropic")


def test_resolve_reads_the_store_only_and_ignores_the_old_environment_prefix(store, monkeypatch):
    secrets.set_secret("llm", "from-store", allowed_destinations=["api.example.com"])
    monkeypatch.setenv("FLOWLOOM_SECRET_LLM", "from-env")
    where = {"node_id": "agent", "node_type": "agent", "field": "api_key_secret"}
    assert secrets.resolve_for_node("llm", destination="https://api.example.com/v1", **where) == "from-store"
    monkeypatch.setenv("FLOWLOOM_SECRET_ONLY_ENV", "env-value")  # no prefix lookup any more
    with pytest.raises(
        StepError, match='api_key_secret: secret "only-env" is not set; add it on the Secrets page'
    ):
        secrets.resolve_for_node("only-env", **where)
    with pytest.raises(StepError) as info:
        secrets.resolve_for_node("absent", **where)
    assert "FLOWLOOM_SECRET_" not in str(info.value)


def test_create_refuses_a_taken_name_and_bad_bindings(store):
    secrets.create_secret("hook", "whsec_abc", allowed_destinations=["https://hooks.example.com/in/"])
    with pytest.raises(secrets.SecretExists, match="already exists"):
        secrets.create_secret("hook", "other")
    with pytest.raises(secrets.SecretsError, match="is not a destination"):
        secrets.create_secret("bad", "v", allowed_destinations=["not a host"])
    with pytest.raises(secrets.SecretsError, match="is not a node type name"):
        secrets.update_secret("hook", allowed_node_types=["Tool HTTP"])
    assert secrets.get_info("hook").allowed_destinations == ["https://hooks.example.com/in/"]


def test_bad_names_and_empty_values_are_refused(store):
    for bad in ("", "../x", "a b", "-lead", "x" * 101):
        with pytest.raises(secrets.SecretsError, match="secret name"):
            secrets.set_secret(bad, "v")
    with pytest.raises(secrets.SecretsError, match="empty"):
        secrets.set_secret("ok", "")


def test_redact_removes_a_secret_echoed_in_an_error():
    message = "LLM answered HTTP 401: Incorrect API key provided: sk-live-123456"
    assert (
        secrets.redact(message, "sk-live-123456")
        == "LLM answered HTTP 401: Incorrect API key provided: [redacted]"
    )
