"""Idempotency keys of run starts: the same key and body give the same run for 24 hours.

A key belongs to its caller ("user:<id>" or "api_key:<id>"), and its row is inserted in the
transaction that creates the run, so one key names at most one run however many requests race:
a loser's INSERT ... ON CONFLICT DO NOTHING waits for the winner's commit, inserts nothing, rolls
its own run back (nothing was dispatched yet) and answers with the winner's run. The stored hash
(SHA-256 of the canonical JSON of the target and the body) tells a retry from a reuse of the key
for another request, which is refused. A request that fails starts nothing and stores no key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from engine import dispatch
from engine.errors import ErrorCode, FlowloomError
from engine.run_state import Dispatch
from engine.settings import get_settings
from models.core_tables import table_of
from models.db import get_engine
from models.triggers import IdempotencyKey

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
WINDOW = timedelta(hours=24)
KEY_MAX_LENGTH = 255
PURGE_EVERY = 100  # every this many new keys per process, expired keys are purged
PURGE_BATCH = 1000

_keys = table_of(IdempotencyKey)
_new_keys = itertools.count(1)

# Starts the run in the given transaction: (run id, the steps to send after the commit).
Starter = Callable[[Connection], tuple[str, list[Dispatch]]]


@dataclass(frozen=True)
class Started:
    """The run a keyed request stands for; `replayed` when an earlier request started it."""

    run_id: str
    replayed: bool


class _Lost(Exception):
    """Another request with the same key committed first (rolls this one's run back)."""


def check_key(key: str) -> str:
    """The key, or a 422 naming the header when it is empty, too long or not printable ASCII."""
    if not key:
        problem = "is empty"
    elif len(key) > KEY_MAX_LENGTH:
        problem = f"is {len(key)} characters long; at most {KEY_MAX_LENGTH} are allowed"
    elif not all(" " <= ch <= "~" for ch in key):
        problem = "may hold only printable ASCII characters"
    else:
        return key
    raise FlowloomError(f"{HEADER} header {problem}", code=ErrorCode.REQUEST_INVALID, field=HEADER)


def body_hash(target: str, body: Any) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of what the request asks for."""
    canonical = json.dumps(
        {"target": target, "body": body}, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        allow_nan=False, default=str,
    )  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


def _cutoff() -> datetime:
    return datetime.now(UTC) - WINDOW


def _find(conn: Connection, principal: str, key: str) -> tuple[str, str] | None:
    row = conn.execute(
        select(_keys.c.run_id, _keys.c.body_hash).where(
            _keys.c.principal == principal, _keys.c.key == key, _keys.c.created_at >= _cutoff()
        )
    ).first()
    return (str(row.run_id), row.body_hash) if row else None


def _replay(found: tuple[str, str], digest: str, key: str) -> Started:
    run_id, stored = found
    if stored != digest:
        raise FlowloomError(
            f"{HEADER} {key!r} was already used for another request (run {run_id}); "
            "send a new key for a new request",
            code=ErrorCode.IDEMPOTENCY_MISMATCH,
            field=HEADER,
        )
    return Started(run_id, replayed=True)


def start_once(
    principal: str,
    key: str,
    target: str,
    body: Any,
    start: Starter,
    *,
    database_url: str | None = None,
) -> Started:
    """The run this key stands for: an earlier one (same body), or one `start` begins now.

    `target` names what the request acts on (method, path, query); `body` is its JSON-able body.
    Raises IDEMPOTENCY_MISMATCH when the key was used in the last 24 hours with another body.
    """
    check_key(key)
    digest = body_hash(target, body)
    engine = get_engine(database_url or get_settings().database_url)
    try:
        with engine.begin() as conn:
            # An expired row of this key would block the insert below: it is forgotten first.
            conn.execute(
                delete(_keys).where(
                    _keys.c.principal == principal, _keys.c.key == key, _keys.c.created_at < _cutoff()
                )
            )
            found = _find(conn, principal, key)
            if found is not None:
                return _replay(found, digest, key)
            run_id, sent = start(conn)
            inserted = conn.execute(
                insert(_keys)
                .values(principal=principal, key=key, body_hash=digest, run_id=run_id, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(constraint="uq_idempotency_principal_key")
                .returning(_keys.c.id)
            ).first()  # fmt: skip
            if inserted is None:
                raise _Lost
    except _Lost:
        with engine.connect() as conn:
            found = _find(conn, principal, key)
        if found is None:  # the winner's run was deleted in the meantime
            raise FlowloomError(
                f"{HEADER} {key!r}: a concurrent request with this key did not finish; try again",
                code=ErrorCode.CONFLICT,
                field=HEADER,
            ) from None
        return _replay(found, digest, key)
    dispatch.send(sent)
    if next(_new_keys) % PURGE_EVERY == 0:
        try:
            purge_expired(database_url=database_url)
        except SQLAlchemyError as exc:  # housekeeping: the run has started, the answer stands
            log.warning("purging expired idempotency keys failed: %s", exc)
    return Started(run_id, replayed=False)


def purge_expired(*, database_url: str | None = None, batch: int = PURGE_BATCH) -> int:
    """Delete up to `batch` keys older than 24 hours (they are ignored anyway); how many went."""
    old = select(_keys.c.id).where(_keys.c.created_at < _cutoff()).limit(batch).scalar_subquery()
    with get_engine(database_url or get_settings().database_url).begin() as conn:
        return conn.execute(delete(_keys).where(_keys.c.id.in_(old))).rowcount
