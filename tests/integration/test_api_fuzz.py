"""Schemathesis against /api/openapi.json, in process, with an admin API key: no request it generates
(valid or not) gets a server error, and every answer matches the schema documented for its status.

Every operation of the document is exercised (the sign-in routes, which hand the browser to an
identity provider, excepted) with a bounded number of examples each; half of the generated ids are
swapped for ids of a real workflow, version, run and trigger, so reads that find something are
checked too. The examples are the same every run (derandomized); FLOWLOOM_FUZZ_SEED=<n> draws
others, FLOWLOOM_FUZZ_EXAMPLES=<n> more of them. Runs are only recorded: the broker is one no worker listens on, so nothing generated
ever executes.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.api.main import api
from app.db import db_session
from engine import runs, triggers, workflows
from tests.integration.test_api_build import definition

pytestmark = pytest.mark.usefixtures("engine_env", "isolated_broker")

EXAMPLES = int(os.environ.get("FLOWLOOM_FUZZ_EXAMPLES", "20"))
# Derandomized (the same examples every run) unless a seed asks for other ones.
SEED = os.environ.get("FLOWLOOM_FUZZ_SEED")
# Sign-in redirects to identity providers and form posts of the login page: not a JSON API.
EXCLUDED = re.compile(r"^/auth/")
# Health answers a documented 503 while a dependency (the workers) is missing, as here on purpose.
HEALTH = re.compile(r"^/api/health")
HOOK = {"id": "hook", "kind": "webhook", "config": {"secret": "fuzz-signing-secret"}}


def seeded() -> dict[str, str]:
    """A workflow with two versions (the second with a webhook trigger) and a run: ids that exist."""
    with db_session() as session:
        workflow_id = workflows.create_workflow(session, "Fuzzed").id
        workflows.save_version(session, workflow_id, definition("v1:"), "first")
        workflows.save_version(session, workflow_id, {**definition("v2:"), "triggers": [HOOK]}, "second")
    saved = workflows.saved_version(workflow_id, 1)
    assert saved is not None
    run_id = runs.start_run(
        saved.definition, {"n": 1}, workflow_id=str(workflow_id), version_id=saved.version_id
    )
    with db_session() as session:
        trigger = triggers.list_for_workflow(session.connection(), workflow_id)[0]
    return {
        "workflow_id": str(workflow_id), "version": "1", "run_id": run_id, "trigger_id": str(trigger.id),
        "node_type": "tool.http",
    }  # fmt: skip


def _operations(schema: Any) -> list[Any]:
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not EXCLUDED.match(operation.path):
            found.append(operation)
    return found


def _exercise(operation: Any, headers: dict[str, str], known: dict[str, str], seen: set[int]) -> None:
    checks = [response_schema_conformance, status_code_conformance, content_type_conformance]
    if not HEALTH.match(operation.path):
        checks.append(not_a_server_error)
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
        generation_mode=GenerationMode.NEGATIVE
    )

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None, derandomize=SEED is None,
        phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @seed(int(SEED or 0))
    @given(case=strategy, use_known=st.booleans())
    def run(case: Any, use_known: bool) -> None:
        if use_known and case.path_parameters and operation.method.upper() != "DELETE":
            for name in case.path_parameters:
                if name in known:
                    case.path_parameters[name] = known[name]
        seen.add(case.call_and_validate(headers=headers, checks=checks).status_code)

    run()


def test_schemathesis_finds_no_server_error_and_no_answer_off_its_schema(api_client) -> None:
    admin = api_client("admin")
    headers = {"Authorization": f"Bearer {admin.api_key}"}
    known = seeded()
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", api)
    operations = _operations(schema)
    assert len(operations) >= 40, [o.label for o in operations]
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        try:
            _exercise(operation, headers, known, statuses.setdefault(operation.label, set()))
        except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide the next one's
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The requests got past the gate and found things: most operations answered a success at least once.
    succeeded = sorted(label for label, seen in statuses.items() if any(200 <= s < 300 for s in seen))
    # (Not every operation can succeed with generated data here, e.g. /api/health without a worker,
    # so the bar is half: it catches a gate or fixture that refuses everything.)
    assert len(succeeded) >= len(operations) // 2, statuses
