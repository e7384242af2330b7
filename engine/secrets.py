"""The encrypted secrets store, and the one way a node gets a secret's value.

Secrets live in the `secrets` table, encrypted with Fernet, each bound to where it may be used
(engine/secret_policy.py). The key is derived from FLOWLOOM_SECRET_KEY when it is set, otherwise
generated once into `<data_dir>/secrets.key` (mode 0600); app and workers must see the same key.

Node configs hold only a secret's name. `resolve_for_node` (called through `StepContext.secret`)
reads the store, or an environment variable an administrator opted in by name with
FLOWLOOM_ENV_SECRETS, and checks the bindings before the value is handed out. Nothing else in the
environment is ever reachable: no prefix lookup, no FLOWLOOM_ variable, no app setting.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert

from engine import secret_policy
from engine.errors import ErrorCode, FlowloomError, PolicyViolation, StepError
from engine.secret_policy import REDACTED, display_host
from engine.settings import EnvSecret, get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.memory import Secret
from models.workspace_column import DEFAULT_WORKSPACE_ID

__all__ = ["REDACTED", "SecretInfo", "SecretsError", "resolve_for_node"]

KEY_FILE = "secrets.key"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
# A node config's secret reference: a name, or empty for "no secret".
REFERENCE_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,99})?$"
_NAME = re.compile(NAME_PATTERN)
_HKDF_INFO = b"flowloom:secrets-store:v1"
_FIX = "on the Secrets page"
_secrets = table_of(Secret)


def _workspace(workspace_id: str | uuid.UUID | None) -> uuid.UUID:
    """The workspace a secret name is looked up in: names are unique per workspace; None is the
    default one, an id that is no UUID a workspace that has no secrets."""
    if workspace_id is None or workspace_id == "":
        return DEFAULT_WORKSPACE_ID
    if isinstance(workspace_id, uuid.UUID):
        return workspace_id
    try:
        return uuid.UUID(str(workspace_id))
    except ValueError:
        return uuid.UUID(int=0)


def _in(workspace_id: str | uuid.UUID | None) -> Any:
    return _secrets.c.workspace_id == _workspace(workspace_id)


# What SecretInfo shows: everything but the ciphertext.
_COLUMNS = tuple(
    _secrets.c[n]
    for n in ("name", "description", "allowed_destinations", "allowed_node_types", "created_by", "created_at",
              "rotated_by", "rotated_at", "updated_at")
)  # fmt: skip


class SecretsError(FlowloomError):
    """A secret cannot be stored or read (bad name or binding, wrong key, no database)."""

    code = ErrorCode.SECRET_INVALID


class SecretExists(SecretsError):
    """A secret of that name is already stored."""

    code = ErrorCode.SECRET_EXISTS


@dataclass(frozen=True)
class SecretInfo:
    """What may be shown about a secret: everything but its value."""

    name: str
    description: str = ""
    allowed_destinations: list[str] = field(default_factory=list)
    allowed_node_types: list[str] = field(default_factory=list)
    created_by: str = ""
    created_at: datetime | None = None
    rotated_by: str = ""
    rotated_at: datetime | None = None
    updated_at: datetime | None = None
    source: str = "store"  # store | env (FLOWLOOM_ENV_SECRETS)
    env: str = ""  # the variable name, for env secrets


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


def _checked_bindings(
    name: str, destinations: list[str] | None, node_types: list[str] | None
) -> tuple[list[str] | None, list[str] | None]:
    try:
        return (
            None if destinations is None else secret_policy.check_destinations(destinations),
            None if node_types is None else secret_policy.check_node_types(node_types),
        )
    except ValueError as exc:
        raise SecretsError(f"secret {name!r}: {exc}") from None


def _info(row) -> SecretInfo:
    return SecretInfo(
        name=row.name, description=row.description, allowed_destinations=list(row.allowed_destinations or []),
        allowed_node_types=list(row.allowed_node_types or []), created_by=row.created_by,
        created_at=row.created_at, rotated_by=row.rotated_by, rotated_at=row.rotated_at,
        updated_at=row.updated_at,
    )  # fmt: skip


def _encrypt(name: str, value: str) -> bytes:
    if not value:
        raise SecretsError(f"secret {name!r}: the value is empty")
    return _fernet().encrypt(value.encode())


def create_secret(
    name: str,
    value: str,
    *,
    description: str = "",
    allowed_destinations: list[str] | None = None,
    allowed_node_types: list[str] | None = None,
    actor: str = "",
    database_url: str | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> SecretInfo:
    """Store a new secret in workspace `workspace_id` (None: the default one), encrypted;
    SecretExists when the name is taken there."""
    check_name(name)
    destinations, node_types = _checked_bindings(name, allowed_destinations or [], allowed_node_types or [])
    token = _encrypt(name, value)
    now = datetime.now(UTC)
    with _db(database_url).begin() as conn:
        row = conn.execute(
            insert(_secrets)
            .values(
                id=func.gen_random_uuid(), name=name, ciphertext=token, description=description[:500],
                allowed_destinations=destinations, allowed_node_types=node_types, created_by=actor[:320],
                rotated_by="", created_at=now, updated_at=now, workspace_id=_workspace(workspace_id),
            )
            .on_conflict_do_nothing(index_elements=["workspace_id", "name"])
            .returning(*_COLUMNS)
        ).first()  # fmt: skip
    if row is None:
        raise SecretExists(f"secret {name!r} already exists; rotate it instead")
    return _info(row)


def update_secret(
    name: str,
    *,
    value: str | None = None,
    description: str | None = None,
    allowed_destinations: list[str] | None = None,
    allowed_node_types: list[str] | None = None,
    actor: str = "",
    database_url: str | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> SecretInfo | None:
    """Rotate the value and/or change description and bindings (None = keep); None when absent
    (from workspace `workspace_id`)."""
    check_name(name)
    destinations, node_types = _checked_bindings(name, allowed_destinations, allowed_node_types)
    now = datetime.now(UTC)
    changes: dict[str, Any] = {"updated_at": now}
    if value is not None:
        changes.update(ciphertext=_encrypt(name, value), rotated_by=actor[:320], rotated_at=now)
    if description is not None:
        changes["description"] = description[:500]
    if destinations is not None:
        changes["allowed_destinations"] = destinations
    if node_types is not None:
        changes["allowed_node_types"] = node_types
    with _db(database_url).begin() as conn:
        row = conn.execute(
            update(_secrets)
            .values(changes)
            .where(_secrets.c.name == name, _in(workspace_id))
            .returning(*_COLUMNS)
        ).first()
    return None if row is None else _info(row)


def set_secret(
    name: str,
    value: str,
    *,
    allowed_destinations: list[str] | None = None,
    allowed_node_types: list[str] | None = None,
    actor: str = "",
    database_url: str | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> SecretInfo:
    """Store secret `name` or rotate it when it exists (scripts and tests); bindings None = keep."""
    changed = update_secret(
        name, value=value, allowed_destinations=allowed_destinations, allowed_node_types=allowed_node_types,
        actor=actor, database_url=database_url, workspace_id=workspace_id,
    )  # fmt: skip
    if changed is not None:
        return changed
    return create_secret(
        name, value, allowed_destinations=allowed_destinations, allowed_node_types=allowed_node_types,
        actor=actor, database_url=database_url, workspace_id=workspace_id,
    )  # fmt: skip


def _decrypt(name: str, token: bytes) -> str:
    try:
        return _fernet().decrypt(bytes(token)).decode()
    except InvalidToken as exc:
        raise SecretsError(
            f"secret {name!r} cannot be decrypted with this key; was FLOWLOOM_SECRET_KEY or "
            f"{KEY_FILE} changed? Store the secret again"
        ) from exc


def get_secret(
    name: str, *, database_url: str | None = None, workspace_id: str | uuid.UUID | None = None
) -> str | None:
    """The decrypted value of stored secret `name` of workspace `workspace_id` (None: the default
    one), or None when it has no such secret."""
    check_name(name)
    with _db(database_url).connect() as conn:
        token = conn.execute(
            select(_secrets.c.ciphertext).where(_secrets.c.name == name, _in(workspace_id))
        ).scalar()
    return None if token is None else _decrypt(name, token)


def get_info(
    name: str, *, database_url: str | None = None, workspace_id: str | uuid.UUID | None = None
) -> SecretInfo | None:
    """What may be shown about stored secret `name` of a workspace (never its value), or None."""
    check_name(name)
    with _db(database_url).connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(_secrets.c.name == name, _in(workspace_id))).first()
    return None if row is None else _info(row)


def delete_secret(
    name: str, *, database_url: str | None = None, workspace_id: str | uuid.UUID | None = None
) -> bool:
    """Remove secret `name` of a workspace (None: the default one); False when there was none."""
    check_name(name)
    with _db(database_url).begin() as conn:
        return bool(conn.execute(delete(_secrets).where(_secrets.c.name == name, _in(workspace_id))).rowcount)


def list_secrets(
    *, database_url: str | None = None, workspace_id: str | uuid.UUID | None = None
) -> list[SecretInfo]:
    """The stored secrets of a workspace (None: the default one) by name (never their values)."""
    with _db(database_url).connect() as conn:
        rows = conn.execute(select(*_COLUMNS).where(_in(workspace_id)).order_by(_secrets.c.name)).all()
    return [_info(r) for r in rows]


# ---------------------------------------------------------------------------------------------
# Environment secrets: only the names an administrator listed in FLOWLOOM_ENV_SECRETS.


def _env_entry(name: str) -> EnvSecret | None:
    entry = get_settings().env_secrets.get(name)
    if entry is None:
        return None
    return EnvSecret(env=entry) if isinstance(entry, str) else entry


def list_env_secrets() -> list[SecretInfo]:
    """The opted-in environment secrets with their bindings (never their values)."""
    infos = []
    for name in sorted(get_settings().env_secrets):
        entry = _env_entry(name)
        if entry is None:  # not reached: the name comes from the same settings
            continue
        infos.append(SecretInfo(name=name, allowed_destinations=list(entry.allowed_destinations),
                                allowed_node_types=list(entry.allowed_node_types), source="env", env=entry.env))  # fmt: skip
    return infos


def _app_values() -> set[str]:
    """Values of the app's own settings that must never leave as a secret, whatever maps to them."""
    settings = get_settings()
    values = {settings.secret_key.get_secret_value(), settings.database_url, settings.redis_url}
    values |= {p.client_secret.get_secret_value() for p in settings.oidc_providers}
    values |= set(settings.sql_connections.values())
    return {v for v in values if v}


@dataclass(frozen=True)
class _Loaded:
    value: str
    allowed_destinations: list[str]
    allowed_node_types: list[str]
    where: str  # for error messages: where to change the bindings


def _from_env(name: str, where: str) -> _Loaded | None:
    entry = _env_entry(name)
    if entry is None:
        return None
    refusal = secret_policy.env_var_refusal(entry.env)
    if refusal is not None:
        raise PolicyViolation(
            f"{where}: secret {name!r} maps to {refusal}; no secret may read it. "
            "Remove it from FLOWLOOM_ENV_SECRETS and store the secret on the Secrets page"
        )
    value = os.environ.get(entry.env) or ""
    if not value:
        raise StepError(
            f"{where}: secret {name!r} is not set: FLOWLOOM_ENV_SECRETS maps it to {entry.env}, "
            "which is empty or undefined in the worker's environment",
            retryable=False,
        )
    if value in _app_values():
        raise PolicyViolation(f"{where}: secret {name!r}: {entry.env} holds one of the app's own settings")
    return _Loaded(
        value, list(entry.allowed_destinations), list(entry.allowed_node_types), "in FLOWLOOM_ENV_SECRETS"
    )


def _from_store(name: str, where: str, workspace_id: str | uuid.UUID | None) -> _Loaded | None:
    if not get_settings().database_url:  # no database (unit tests, scripts): opted-in env secrets only
        return None
    try:
        with _db(None).connect() as conn:
            row = conn.execute(
                select(
                    _secrets.c.ciphertext, _secrets.c.allowed_destinations, _secrets.c.allowed_node_types
                ).where(_secrets.c.name == name, _in(workspace_id))
            ).first()
        if row is None:
            return None
        value = _decrypt(name, row.ciphertext)
    except SecretsError as exc:
        raise StepError(f"{where}: {exc}", retryable=False) from exc
    return _Loaded(value, list(row.allowed_destinations or []), list(row.allowed_node_types or []), _FIX)


def resolve_for_node(
    name: str,
    *,
    node_id: str,
    node_type: str,
    field: str,
    destination: str | None = None,
    workspace_id: str | uuid.UUID | None = None,
) -> str:
    """The value of secret `name` of workspace `workspace_id` (the step's run's; None: the default
    one) for a node, after its bindings allowed this use. Another workspace's secret of the same
    name is never read.

    StepError when the secret does not exist; PolicyViolation (naming node, field and secret)
    when the node type or the destination URL is not among the secret's allowed ones. Checked
    before the node opens any connection.
    """
    where = f'node "{node_id}" ({node_type}): {field}'
    if not _NAME.match(name or ""):
        raise StepError(f"{where}: {name!r} is not a secret name", retryable=False)
    loaded = _from_store(name, where, workspace_id) or _from_env(name, where)
    if loaded is None:
        raise StepError(
            f'{where}: secret "{name}" is not set; add it {_FIX} '
            "(or opt an environment variable in for it with FLOWLOOM_ENV_SECRETS)",
            retryable=False,
        )
    if loaded.allowed_node_types and node_type not in loaded.allowed_node_types:
        raise PolicyViolation(
            f'{where}: secret "{name}" may not be used by {node_type} nodes; allowed: '
            f"{', '.join(loaded.allowed_node_types)}; change the secret's allowed node types {loaded.where}",
            node_id=node_id,
            field=field,
        )
    if destination is not None and not secret_policy.destination_allowed(
        destination, loaded.allowed_destinations
    ):
        allowed = ", ".join(loaded.allowed_destinations) or "no destination"
        raise PolicyViolation(
            f'{where}: secret "{name}" may not be sent to {display_host(destination)}; allowed: {allowed}; '
            f"change the secret's allowed destinations {loaded.where}",
            node_id=node_id,
            field=field,
        )
    return loaded.value


def redact(message: str, *values: str | None) -> str:
    """`message` with every given secret value replaced (for errors that may echo a credential)."""
    return secret_policy.redact_value(message, [v for v in values if v])
