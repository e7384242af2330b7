"""The `tool.sql` node: one parameterised SQL statement on a named connection.

Read-only is the database's decision, not a guess from the SQL text: the statement runs in a
read-only transaction (PostgreSQL `SET TRANSACTION READ ONLY`, SQLite `PRAGMA query_only`) that is
rolled back; other databases can only run it with `allow_writes`. A query holding several
statements is refused by the database too: on PostgreSQL it is sent as a prepared statement
(which holds exactly one), and SQLite's driver runs one statement at a time.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from engine.contract import ConfigError, ErrorCode, PolicyViolation, Port, StepContext, StepError, register

SETTING = "FLOWLOOM_SQL_CONNECTIONS"
READ_ONLY_DIALECTS = frozenset({"postgresql", "sqlite"})  # where the database enforces read-only
READ_ONLY_SQLSTATE = "25006"  # PostgreSQL: read_only_sql_transaction
_ONE_STATEMENT = "flowloom_one_statement"  # execution option: send as a prepared statement
# What the database says when a query holds more than one statement.
_SEVERAL_STATEMENTS = ("cannot insert multiple commands into a prepared statement", "one statement at a time")


class SqlQueryConfig(BaseModel):
    """Config of `tool.sql`."""

    model_config = ConfigDict(extra="forbid")

    connection: str = Field(
        min_length=1,
        description=f"Name of a database connection configured in {SETTING} (name -> URL)",
    )
    query: str = Field(
        min_length=1,
        description="SQL with :name placeholders for params; never put {{ }} values into the SQL text",
        json_schema_extra={"format": "multiline"},
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Values bound to the :name placeholders (sent separately, never formatted into SQL)",
    )
    allow_writes: bool = Field(
        False,
        description="Allow INSERT/UPDATE/DELETE/DDL and commit; off = a read-only transaction, rolled back",
        json_schema_extra={"x-fixed": True},  # a power: set in the saved definition, never by a template
    )
    max_rows: int = Field(1000, ge=1, le=100_000, description="Most rows returned")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="Statement timeout (PostgreSQL)")


def _engine_url(url: str) -> str:
    # Plain postgresql:// would pick psycopg2; Flowloom ships psycopg 3.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _prepared(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """SQLAlchemy's do_execute hook: the node's query goes to psycopg as a prepared statement.

    PostgreSQL's extended protocol parses exactly one statement, so `SELECT 1; DELETE FROM t`
    is refused by the server whether or not the query has parameters.
    """
    if not context.execution_options.get(_ONE_STATEMENT):
        return False
    cursor.execute(statement, parameters or {}, prepare=True)
    return True


@lru_cache(maxsize=32)
def engine_for(url: str) -> Engine:
    """One pooled engine per database URL."""
    url = _engine_url(url)
    connect_args = {"connect_timeout": 10} if url.startswith("postgresql") else {}
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        event.listen(engine, "do_execute", _prepared)
    return engine


def _resolve_url(ctx: StepContext, name: str) -> str:
    if ctx.sql_connection is None:
        raise StepError(f"connection: no SQL connections are configured; set {SETTING}", retryable=False,
                        code=ErrorCode.CONNECTION_UNKNOWN, field="connection")  # fmt: skip
    try:
        url = ctx.sql_connection(name)
    except (LookupError, ConfigError) as exc:
        url = ""
        cause: BaseException | None = exc
    else:
        cause = None
    if not url:
        raise StepError(
            f"connection: unknown connection {name!r}; add it to {SETTING} (name -> URL)",
            retryable=False,
            code=ErrorCode.CONNECTION_UNKNOWN,
            field="connection",
        ) from cause
    return url


def _jsonable(value: Any) -> Any:
    """Database values as JSON values (Decimal -> number, dates -> ISO text, bytes -> base64)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _guard_read_only(conn: Connection, timeout_s: float, read_only: bool) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        if read_only:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.execute(
            text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(int(timeout_s * 1000))}
        )
    elif dialect == "sqlite" and read_only:
        conn.exec_driver_sql("PRAGMA query_only = ON")


def _reset(conn: Connection, read_only: bool) -> None:
    if conn.dialect.name == "sqlite" and read_only:
        conn.exec_driver_sql("PRAGMA query_only = OFF")  # pooled connection: leave it as found


def run_query(engine: Engine, cfg: SqlQueryConfig) -> dict[str, Any]:
    """Execute the configured statement in one transaction (rolled back unless writes are allowed)."""
    read_only = not cfg.allow_writes
    with engine.connect() as conn:
        try:
            with conn.begin() as tx:
                _guard_read_only(conn, cfg.timeout_s, read_only)
                statement = text(cfg.query).execution_options(**{_ONE_STATEMENT: True})
                result = conn.execute(statement, cfg.params)
                rows, truncated = [], False
                if result.returns_rows:
                    fetched = result.mappings().fetchmany(cfg.max_rows + 1)
                    truncated = len(fetched) > cfg.max_rows
                    rows = [{k: _jsonable(v) for k, v in r.items()} for r in fetched[: cfg.max_rows]]
                    rowcount = len(rows)
                else:
                    rowcount = result.rowcount
                if read_only:
                    tx.rollback()
        finally:
            _reset(conn, read_only)
    return {"rows": rows, "rowcount": rowcount, "truncated": truncated}


def _step_error(exc: SQLAlchemyError, dialect_hint: str) -> Exception:
    orig = getattr(exc, "orig", None)
    detail = str(orig if orig is not None else exc).strip().splitlines()[0]
    if getattr(orig, "sqlstate", None) == READ_ONLY_SQLSTATE or "readonly" in detail.replace(" ", ""):
        return PolicyViolation(
            f"query: the database refused it in a read-only transaction ({detail}); {dialect_hint}"
        )
    if any(marker in detail for marker in _SEVERAL_STATEMENTS):
        return PolicyViolation(
            f"query: holds several statements ({detail}); tool.sql runs exactly one, "
            "so split it into one tool.sql node per statement"
        )
    if isinstance(exc, OperationalError | PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return StepError(f"database unavailable: {detail}", retryable=True)
    return StepError(f"query: {detail}", retryable=False)


@register(
    "tool.sql",
    category="tool",
    label="SQL query",
    config=SqlQueryConfig,
    inputs={"in": Port("any", required=False, description="available to templates as ports.in")},
    outputs={"out": Port("object", description="{rows, rowcount, truncated}")},
    icon="database",
    unrendered_fields={"query"},  # values travel as bound params, never as text spliced into the SQL
)
async def sql_query(ctx: StepContext, cfg: SqlQueryConfig, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run one SQL statement with bound parameters; read-only unless writes are allowed."""
    url = _resolve_url(ctx, cfg.connection)
    hint = "turn on allow_writes to change data"
    try:
        engine = engine_for(url)
    except (SQLAlchemyError, ImportError) as exc:
        # The message would quote the URL, password included; name the connection instead.
        raise StepError(
            f"connection: the URL of {cfg.connection!r} in {SETTING} is not usable ({type(exc).__name__})",
            retryable=False,
        ) from None
    if not cfg.allow_writes and engine.dialect.name not in READ_ONLY_DIALECTS:
        raise PolicyViolation(
            f"allow_writes: the {engine.dialect.name} database of {cfg.connection!r} cannot be held to "
            "read-only by Flowloom (only PostgreSQL and SQLite); turn on allow_writes and connect "
            "with a database user that may only read"
        )
    try:
        return {"out": await asyncio.to_thread(run_query, engine, cfg)}
    except SQLAlchemyError as exc:
        raise _step_error(exc, hint) from exc
