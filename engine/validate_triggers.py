"""The validator's checks of a definition's triggers: unique ids, each kind's config, and what a
kind needs of the workflow (a chat needs its message input, a form an inputs schema)."""

from __future__ import annotations

from engine.definition import WorkflowDefinition
from engine.errors import ErrorCode, Issue
from engine.expressions import check_expression
from engine.trigger_config import ChatConfig, KafkaConfig, config_problems, parse_config


def trigger_issues(defn: WorkflowDefinition) -> list[Issue]:
    """Every problem of `defn.triggers`, each located by the field `triggers.<id>.config.<field>`."""
    issues: list[Issue] = []
    seen: set[str] = set()
    properties = (defn.inputs or {}).get("properties") or {}
    for trigger in defn.triggers:
        where = f"triggers.{trigger.id}"
        if trigger.id in seen:
            issues.append(
                Issue(
                    f"duplicate trigger id {trigger.id!r}", code=ErrorCode.DUPLICATE_ID, field=f"{where}.id"
                )
            )
        seen.add(trigger.id)
        problems = config_problems(trigger.kind, trigger.config)
        for field, message in problems:
            issues.append(Issue(f"{trigger.kind} trigger {trigger.id!r}: {field}: {message}",
                                code=ErrorCode.TRIGGER_INVALID, field=f"{where}.config.{field}"))  # fmt: skip
        if problems:
            continue
        config = parse_config(trigger.kind, trigger.config)
        if isinstance(config, KafkaConfig) and config.filter:
            refused = check_expression(config.filter)
            if refused:
                issues.append(Issue(f"kafka trigger {trigger.id!r}: filter: {refused}",
                                    code=ErrorCode.BAD_CONDITION, field=f"{where}.config.filter"))  # fmt: skip
        if isinstance(config, ChatConfig) and properties and config.message_input not in properties:
            issues.append(Issue(
                f"chat trigger {trigger.id!r}: the workflow's inputs have no {config.message_input!r} field "
                "for the user's message", code=ErrorCode.TRIGGER_INVALID, field=f"{where}.config.message_input",
            ))  # fmt: skip
    return issues
