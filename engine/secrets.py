"""The encrypted secrets store: credentials kept in the `secrets` table, encrypted with Fernet.

Node configs hold only a secret's name; the value is read here at run time and never written
to definitions, exports, step outputs or logs. The key is derived from FLOWLOOM_SECRET_KEY
when it is set, otherwise it is generated once into `<data_dir>/secrets.key` (mode 0600).
Every process that reads secrets (app and workers) must see the same key.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, text

from engine.errors import FlowloomError, StepError
from engine.settings import get_settings
from models.db import get_engine

KEY_FILE = "secrets.key"
ENV_PREFIX = "FLOWLOOM_SECRET_"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
# A node config's secret reference: a name, or empty for "no secret".
REFERENCE_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,99})?$"
_NAME = re.compile(NAME_PATTERN)
_HKDF_INFO = b"flowloom:secrets-store:v1"
REDACTED = "[redacted]"


class SecretsError(FlowloomError):
    """A secret cannot be stored or read (bad name, wrong key, no database)."""


def _key_from_setting(secret: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


def _key_from_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:  # O_EXCL: when two processes race, one writes and both read the winner's key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


_lock = threading.Lock()
_fernets: dict[tuple, Fernet] = {}


def _fernet() -> Fernet:
    settings = get_settings()
    configured = settings.secret_key.get_secret_value()
    source = ("setting", configured) if configured else ("file", str(settings.resolved_data_dir / KEY_FILE))
    with _lock:
        if source not in _fernets:
            key = _key_from_setting(configured) if configured else _key_from_file(Path(source[1]))
            _fernets[source] = Fernet(key)
        return _fernets[source]


def _db(database_url: str | None) -> Engine:
    url = database_url or get_settings().database_url
    if not url:
        raise SecretsError("secrets: no database configured (FLOWLOOM_DATABASE_URL)")
    return get_engine(url)


def check_name(name: str) -> str:
    """The name if it is a valid secret name; SecretsError saying what is allowed otherwise."""
    if not _NAME.match(name or ""):
        raise SecretsError(
            f"secret name {name!r}: use 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def set_secret(name: str, value: str, *, database_url: str | None = None) -> None:
    """Store (or replace) secret `name`, encrypted."""
    check_name(name)
    if not value:
        raise SecretsError(f"secret {name!r}: the value is empty")
    token = _fernet().encrypt(value.encode())
    now = datetime.now(UTC)
    with _db(database_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO secrets (id, name, ciphertext, created_at, updated_at)"
                " VALUES (gen_random_uuid(), :name, :ct, :now, :now)"
                " ON CONFLICT (name) DO UPDATE SET ciphertext = EXCLUDED.ciphertext, updated_at = EXCLUDED.updated_at"
            ),
            {"name": name, "ct": token, "now": now},
        )


def get_secret(name: str, *, database_url: str | None = None) -> str | None:
    """The decrypted value of secret `name`, or None when the store has no such secret."""
    check_name(name)
    with _db(database_url).connect() as conn:
        token = conn.execute(text("SELECT ciphertext FROM secrets WHERE name = :n"), {"n": name}).scalar()
    if token is None:
        return None
    try:
        return _fernet().decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise SecretsError(
            f"secret {name!r} cannot be decrypted with this key; was FLOWLOOM_SECRET_KEY or "
            f"{KEY_FILE} changed? Store the secret again"
        ) from exc


def delete_secret(name: str, *, database_url: str | None = None) -> bool:
    """Remove secret `name`; False when there was none."""
    check_name(name)
    with _db(database_url).begin() as conn:
        return bool(conn.execute(text("DELETE FROM secrets WHERE name = :n"), {"n": name}).rowcount)


def list_secrets(*, database_url: str | None = None) -> list[dict[str, object]]:
    """Names and timestamps of the stored secrets (never their values)."""
    with _db(database_url).connect() as conn:
        rows = conn.execute(text("SELECT name, created_at, updated_at FROM secrets ORDER BY name")).all()
    return [{"name": r.name, "created_at": r.created_at, "updated_at": r.updated_at} for r in rows]


def env_var(name: str) -> str:
    """The environment variable that may also hold secret `name` (FLOWLOOM_SECRET_<NAME>)."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def resolve(name: str, *, field: str) -> str | None:
    """The value a node config's secret reference names: the store first, then the environment.

    None when no name is set; a StepError naming the field, the secret and both fixes when the
    secret exists in neither place.
    """
    if not name:
        return None
    value = None
    if get_settings().database_url:  # without a database (unit tests, scripts) only the environment
        try:
            value = get_secret(name)
        except SecretsError as exc:
            raise StepError(f"{field}: {exc}", retryable=False) from exc
    if value is None:
        value = os.environ.get(env_var(name)) or None
    if value is None:
        raise StepError(
            f"{field}: secret {name!r} is not set; add it to the secrets store or define {env_var(name)}",
            retryable=False,
        )
    return value


def redact(message: str, *values: str | None) -> str:
    """`message` with every given secret value replaced (for errors that may echo a credential)."""
    for value in values:
        if value and len(value) >= 4:
            message = message.replace(value, REDACTED)
    return message
