"""`tool.sql` on the suite's own PostgreSQL: bound parameters, read-only by the database's own
decision, the row cap, and a workflow on real workers reading through FLOWLOOM_SQL_CONNECTIONS."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from engine.contract import StepContext, get_node_type
from engine.errors import PolicyViolation
from engine.runs import start_run
from models.db import get_engine
from tests.conftest import SUITE_SQL_CONNECTION
from tests.integration.engine_helpers import node, steps_by_node, wait_for_run, workflow


def sql(pg_url: str, config: dict[str, Any]) -> Any:
    """Run one tool.sql node the way a worker does, its connection `main` being the suite's database."""
    node_type = get_node_type("tool.sql")
    assert node_type is not None
    cfg = node_type.config_model.model_validate({"connection": "main", **config})
    ctx = StepContext(
        run_id="run-1", step_id="step-1", node_id="q", node_type="tool.sql",
        sql_connection={"main": pg_url}.__getitem__,
    )  # fmt: skip

    async def call() -> Any:
        try:
            result = node_type.run(ctx, cfg, {})
            return await result if inspect.isawaitable(result) else result
        finally:
            await ctx.aclose()

    return asyncio.run(call())


@pytest.fixture
def table(pg_url: str) -> Iterator[str]:
    """A fresh table (id int, label text) in the suite's database, dropped after the test."""
    name = f"sql_node_test_{uuid.uuid4().hex[:8]}"
    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (id int PRIMARY KEY, label text)"))
    yield name
    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def count_rows(pg_url: str, table: str) -> int:
    with get_engine(pg_url).connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_sql_binds_params_instead_of_formatting_them(pg_url: str, table: str) -> None:
    hostile = "x'); DROP TABLE " + table + "; --"
    out = sql(
        pg_url,
        {
            "query": "SELECT :label AS label, CAST(:n AS int) + 1 AS next",
            "params": {"label": hostile, "n": 41},
        },
    )
    assert out["out"]["rows"] == [{"label": hostile, "next": 42}]
    assert count_rows(pg_url, table) == 0  # the table is still there


def test_sql_refuses_writes_unless_allowed(pg_url: str, table: str) -> None:
    with pytest.raises(PolicyViolation, match="INSERT"):
        sql(pg_url, {"query": f"INSERT INTO {table} VALUES (1, 'a')"})
    # A write hidden in a CTE passes the keyword guard; the read-only transaction refuses it.
    with pytest.raises(PolicyViolation, match="read-only"):
        sql(
            pg_url, {"query": f"WITH w AS (INSERT INTO {table} VALUES (2, 'b') RETURNING id) SELECT * FROM w"}
        )
    assert count_rows(pg_url, table) == 0
    out = sql(
        pg_url,
        {
            "query": f"INSERT INTO {table} VALUES (:id, :label)",
            "params": {"id": 3, "label": "c"},
            "allow_writes": True,
        },
    )
    assert out["out"]["rowcount"] == 1
    assert count_rows(pg_url, table) == 1


def test_sql_refuses_two_statements_in_one_query(pg_url: str, table: str) -> None:
    with pytest.raises(PolicyViolation):
        sql(pg_url, {"query": f"SELECT 1; DELETE FROM {table}", "allow_writes": True})


def test_sql_caps_rows_at_max_rows(pg_url: str) -> None:
    out = sql(pg_url, {"query": "SELECT generate_series(1, 10) AS i", "max_rows": 3})["out"]
    assert [r["i"] for r in out["rows"]] == [1, 2, 3]
    assert out["truncated"]


@pytest.mark.usefixtures("engine_env", "engine_worker")
def test_a_workflow_reads_the_suite_database_through_its_configured_connection(
    pg_url: str, table: str
) -> None:
    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two'), (3, 'three')"))
    query = f"SELECT label FROM {table} WHERE id >= :min ORDER BY id"
    defn = workflow(
        [
            node("start", "start"),
            node(
                "q",
                "tool.sql",
                connection=SUITE_SQL_CONNECTION,
                query=query,
                params={"min": "{{ input.min }}"},
            ),
            node("w", "tool.sql", connection=SUITE_SQL_CONNECTION, query=f"DELETE FROM {table}"),
            node("end", "end"),
        ],
        [("start", "q"), ("q", "w"), ("w", "end")],
        outputs={"labels": "{{ steps.q.outputs.out.rows | map(attribute='label') | list }}"},
    )
    view = wait_for_run(start_run(defn, {"min": 2}))
    steps = steps_by_node(view)
    assert steps["q"]["status"] == "succeeded", steps["q"]["error"]
    assert steps["q"]["outputs"]["out"]["rows"] == [{"label": "two"}, {"label": "three"}]
    # The second node's DELETE is refused (no allow_writes): the run fails there, the rows stay.
    assert view.status == "failed" and steps["w"]["status"] == "failed"
    assert "DELETE" in steps["w"]["error"]
    assert count_rows(pg_url, table) == 3
