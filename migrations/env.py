"""Alembic environment: targets SQLModel.metadata with every Flowloom table imported."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text
from sqlmodel import SQLModel

import models  # noqa: F401 - importing the package registers every table on SQLModel.metadata
from engine.ops.embedded_postgres import embedded_database_url
from engine.ops.migrate import COMPARE_OPTIONS
from engine.settings import get_settings
from models.db import normalise_url

config = context.config
target_metadata = SQLModel.metadata

# One fixed key so two processes migrating the same database take turns.
MIGRATION_LOCK_KEY = 0x466C6F776C6F6F6D  # "Flowloom"

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """The URL engine.ops.migrate passes, else alembic.ini's sqlalchemy.url, else FLOWLOOM_DATABASE_URL.

    With none of them set, the embedded PostgreSQL (running under `flowloom up`) is used, so
    `alembic revision --autogenerate -m "..."` works beside a running Flowloom.
    """
    settings = get_settings()
    return (
        config.attributes.get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or settings.database_url
        or embedded_database_url(settings)
    )


def configure(connection: Connection) -> None:
    """The options autogenerate and compare_metadata share (engine.ops.migrate uses the same ones)."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        **COMPARE_OPTIONS,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout (alembic upgrade --sql)."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over a connection, holding an advisory lock for the whole transaction."""
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(normalise_url(database_url()), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            configure(connection)
            with context.begin_transaction():
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
