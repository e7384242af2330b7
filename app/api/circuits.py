"""/api/circuits: the HTTP destinations' circuit breakers (engine/circuit_breaker.py), for admins."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from app.api.callers import InstanceAdmin, client_ip
from engine import audit, circuit_breaker
from engine.settings import get_settings

router = APIRouter(tags=["circuit breakers"])


class CircuitPublic(BaseModel):
    destination: str = Field(description="scheme://host:port")
    state: Literal["closed", "open", "half-open"]
    failures: int = Field(description="failures in a row")
    opens_for_s: float = Field(description="while open: seconds until one probe may pass")


class CircuitList(BaseModel):
    circuits: list[CircuitPublic] = Field(
        description="destinations with failures or an open circuit, open first"
    )
    failures_to_open: int = Field(description="FLOWLOOM_BREAKER_FAILURES (0 = no breaker)")
    open_s: float = Field(description="FLOWLOOM_BREAKER_OPEN_S")


def _list() -> CircuitList:
    settings = get_settings()
    return CircuitList(
        circuits=[CircuitPublic(**vars(c)) for c in circuit_breaker.circuits()],
        failures_to_open=settings.breaker_failures,
        open_s=settings.breaker_open_s,
    )


@router.get("/circuits", response_model=CircuitList)
def list_circuits(principal: InstanceAdmin) -> CircuitList:
    """Every destination whose requests failed lately, and whether its circuit is open."""
    return _list()


@router.post("/circuits/reset", response_model=CircuitList)
def reset_circuit(
    principal: InstanceAdmin,
    request: Request,
    destination: str = Query(min_length=1, max_length=500, pattern=r"^https?://[^/\s]+$"),
) -> CircuitList:
    """Close a destination's circuit now (after fixing what failed), instead of waiting for a probe."""
    circuit_breaker.reset(destination)
    audit.record_now(
        actor=principal.actor, action="circuit.reset", target_type="destination", target_id=destination,
        ip=client_ip(request),
    )  # fmt: skip
    return _list()
