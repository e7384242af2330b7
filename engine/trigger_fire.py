"""Fire a trigger: start its run for one delivery (a webhook id, a schedule tick, a Kafka offset).

The delivery row's unique key, inserted in the transaction that creates the run, is what makes a
delivery start exactly one run however often it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from engine import dispatch, metrics, publishing
from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, FlowloomError
from engine.ids import parse_id
from engine.parse import parse_dict
from engine.run_state import Dispatch
from engine.runs import start_run_in
from engine.settings import get_settings
from engine.triggers import TriggerRow
from models.core_tables import table_of
from models.db import get_engine
from models.triggers import TriggerDelivery

_deliveries = table_of(TriggerDelivery)


@dataclass
class Fired:
    """What a delivery did: the run it started (or had started before: `duplicate`)."""

    run_id: str | None
    duplicate: bool = False
    dispatches: list[Dispatch] = field(default_factory=list)


def _db(database_url: str | None = None):
    return get_engine(database_url or get_settings().database_url)


def published_definition(conn: Connection, workflow_id: str) -> tuple[WorkflowDefinition, str]:
    """The definition a trigger runs (the workflow's published version) and its version row id."""
    wanted = parse_id(workflow_id)
    row = publishing.published_row(conn, wanted) if wanted is not None else None
    if row is None:
        raise FlowloomError(
            f"workflow {workflow_id} has no published version", code=ErrorCode.VERSION_NOT_FOUND
        )
    return parse_dict(row.definition), str(row.id)


def fire_in(
    conn: Connection,
    trigger: TriggerRow,
    delivery_key: str,
    inputs: dict[str, Any],
    *,
    session_id: str | None = None,
    started_by: str = "",
) -> Fired:
    """Start the trigger's run for one delivery, in the caller's transaction.

    A delivery key seen before starts nothing and returns the run the first delivery started
    (`duplicate`). A concurrent second delivery of the same key waits on the unique index until
    the first commits, then sees it. Raises ValidationError when the inputs do not fit.
    """
    if not trigger.live:
        raise FlowloomError(f"trigger {trigger.key!r} is paused or no longer in the workflow",
                            code=ErrorCode.TRIGGER_PAUSED)  # fmt: skip
    inserted = conn.execute(
        pg_insert(_deliveries)
        .values(
            trigger_id=trigger.id, delivery_key=delivery_key[:300], status="started", created_at=func.now()
        )
        .on_conflict_do_nothing(constraint="uq_trigger_delivery")
        .returning(_deliveries.c.id)
    ).scalar()
    if inserted is None:
        run_id = conn.execute(
            select(_deliveries.c.run_id).where(
                _deliveries.c.trigger_id == trigger.id, _deliveries.c.delivery_key == delivery_key[:300]
            )
        ).scalar()
        metrics.trigger_delivered(trigger.kind, duplicate=True)
        return Fired(str(run_id) if run_id else None, duplicate=True)
    defn, version_id = published_definition(conn, trigger.workflow_id)
    run_id, sent = start_run_in(
        conn, defn, inputs, workflow_id=trigger.workflow_id, version_id=version_id,
        started_by=started_by or f"trigger:{trigger.id}", started_via="trigger", trigger_id=trigger.id,
        session_id=session_id,
    )  # fmt: skip
    conn.execute(update(_deliveries).where(_deliveries.c.id == inserted).values(run_id=run_id))
    metrics.trigger_delivered(trigger.kind, duplicate=False)
    return Fired(run_id, dispatches=sent)


def fire(
    trigger: TriggerRow,
    delivery_key: str,
    inputs: dict[str, Any],
    *,
    session_id: str | None = None,
    started_by: str = "",
    database_url: str | None = None,
) -> Fired:
    """`fire_in` in a transaction of its own; the run's first step is sent after the commit."""
    with _db(database_url).begin() as conn:
        fired = fire_in(conn, trigger, delivery_key, inputs, session_id=session_id, started_by=started_by)
    dispatch.send(fired.dispatches)
    return fired
