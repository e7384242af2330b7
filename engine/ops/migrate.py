"""Alembic migrations run from code, with connection problems turned into one-line ConfigErrors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

import models  # noqa: F401 - registers every table on SQLModel.metadata
from engine.db_errors import db_error_reason
from engine.errors import ConfigError
from engine.ops.health import (
    DB_SETTING,
    CheckResult,
    check_database,
    check_pgvector,
    mask_url,
    require,
)
from models.db import normalise_url

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "migrations"


# Comparison options autogenerate (migrations/env.py) and schema_drift share. A callable
# compare_server_default would be neater but Alembic 1.20 crashes on it for Identity columns.
COMPARE_OPTIONS: dict[str, Any] = {"compare_type": True, "compare_server_default": True}


def alembic_config(database_url: str) -> Config:
    """An Alembic config for `database_url` that does not touch logging (alembic.ini is for the CLI)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    return config


def head_revision() -> str | None:
    """The newest revision in migrations/versions."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def _engine(database_url: str) -> Any:
    return create_engine(normalise_url(database_url), poolclass=pool.NullPool)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade_to_head(database_url: str) -> str | None:
    """Check the database and pgvector, then migrate to head; returns the head revision."""
    require(check_database(database_url))
    require(check_pgvector(database_url))
    try:
        command.upgrade(alembic_config(database_url), "head")
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"migrating the database at {mask_url(database_url)} ({DB_SETTING}) failed: {db_error_reason(exc)}"
        ) from exc
    head = head_revision()
    log.info("database at %s is at revision %s", mask_url(database_url), head)
    return head


def schema_drift(database_url: str) -> list[Any]:
    """Differences between the tables in models/ and the database (empty when they agree)."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=COMPARE_OPTIONS)
            diffs = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    flat = [d for diff in diffs for d in (diff if isinstance(diff, list) else [diff])]
    return flat


def describe_drift(diffs: list[Any]) -> list[str]:
    """One short line per difference: 'add_table audit_log', 'modify_nullable runs.error'."""
    lines = []
    for diff in diffs:
        kind, *rest = diff
        if kind.endswith("_table"):
            lines.append(f"{kind} {rest[0].name}")
        elif kind.endswith(("_index", "_constraint", "_fk")):
            lines.append(f"{kind} {rest[0].name} on {rest[0].table.name}")
        elif kind.endswith("_column"):
            lines.append(f"{kind} {rest[1]}.{rest[2].name}")
        elif kind.startswith("modify_"):
            lines.append(f"{kind} {rest[1]}.{rest[2]}")
        else:
            lines.append(repr(diff))
    return lines


def check_schema(database_url: str) -> CheckResult:
    """Is the database migrated to head?"""
    fix = "run `flowloom migrate` (`flowloom up` migrates on start)"
    try:
        current = current_revision(database_url)
    except SQLAlchemyError as exc:
        return CheckResult("schema", False, f"cannot read the schema revision: {db_error_reason(exc)}", fix)
    head = head_revision()
    if current != head:
        return CheckResult("schema", False, f"database at revision {current or 'none'}, code at {head}", fix)
    return CheckResult("schema", True, f"at head ({head})")
