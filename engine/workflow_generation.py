"""Generate a workflow definition from a description ("Describe your workflow" in the editor).

The model is asked through the engine itself: a one-step run of the `agent` node type
(start -> agent -> end), found through the node registry like any node, so the configured
provider (FLOWLOOM_GENERATOR_*), its API key from the secrets store, the egress policy and the
workers are the ones every workflow uses; the engine imports no node. The answer is parsed and
checked by the engine's validator. If it does not validate, the model is asked once more with the
validator's issues; a second refusal is final and carries the reasons. Nothing is saved here: the
editor shows the result for the user to accept or discard.

What the model is sent: the node catalogue (types, ports, config fields), the definition format
and the user's description, with the value of every secret the deployment knows blanked out of it.
Never a secret value, and no existing workflow.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from engine import secrets
from engine.contract import NodeType, all_node_types
from engine.definition import WorkflowDefinition
from engine.errors import DefinitionError, ErrorCode, FlowloomError, user_message
from engine.parse import load_json, parse_dict
from engine.run_events import TERMINAL_RUN, wait_for_end
from engine.runs import cancel_run, get_run, start_run
from engine.settings import get_settings
from engine.validate import validate

log = logging.getLogger("flowloom.generation")

ASK_NODE = "model"  # the agent step of a generation run
MAX_DESCRIPTION = 4000  # characters of a description
MAX_ECHO = 6000  # characters of a refused answer sent back with its issues
MAX_ISSUES = 20  # issues sent back to the model (and shown) at most
SECRET_MARK = "[secret]"
RUN_NAME = "Generate a workflow"


class GenerationError(FlowloomError):
    """The model could not be asked: not configured, the run failed or timed out, an empty answer."""

    code = ErrorCode.GENERATION_FAILED


class GenerationRefused(FlowloomError):
    """The model's workflow did not validate, even after one repair: `reasons` say why."""

    code = ErrorCode.GENERATION_REFUSED

    def __init__(self, message: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.reasons = reasons


@dataclass(frozen=True)
class Generator:
    """The model that drafts workflows, from FLOWLOOM_GENERATOR_* (the `agent` node's providers)."""

    provider: str
    model: str
    base_url: str = ""
    api_key_secret: str = ""
    max_tokens: int = 4096
    timeout_s: float = 180.0


@dataclass
class Generated:
    """A definition that validated, and how it was reached."""

    definition: dict[str, Any]
    attempts: int  # 1, or 2 after a repair
    run_ids: list[str] = field(default_factory=list)
    first_reasons: list[str] = field(default_factory=list)  # why the first answer was sent back
    warnings: list[str] = field(default_factory=list)

    @property
    def repaired(self) -> bool:
        return self.attempts > 1


Ask = Callable[[str, str], tuple[str, str]]  # (instructions, prompt) -> (answer text, run id)


def configured() -> Generator | None:
    """The configured generator, or None while FLOWLOOM_GENERATOR_MODEL is empty."""
    s = get_settings()
    if not s.generator_model.strip():
        return None
    return Generator(
        provider=s.generator_provider, model=s.generator_model.strip(), base_url=s.generator_base_url.strip(),
        api_key_secret=s.generator_api_key_secret.strip(), max_tokens=s.generator_max_tokens,
        timeout_s=s.generator_timeout_s,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# What the model is told


def _field_line(name: str, prop: dict[str, Any], required: bool) -> str:
    options = prop.get("anyOf", [])
    kind = prop.get("type") or "|".join(
        str(p.get("type", "object" if "$ref" in p else "any")) for p in options
    )
    parts = [f"{name}: {kind or 'any'}"]
    if "enum" in prop:
        parts.append("one of " + ", ".join(json.dumps(v) for v in prop["enum"]))
    if required:
        parts.append("required")
    elif "default" in prop and prop["default"] not in ("", None, [], {}):
        parts.append(f"default {json.dumps(prop['default'])}")
    text = "; ".join(parts)
    description = str(prop.get("description") or "").strip()
    return f"      - {text}" + (f" — {description}" if description else "")


def _node_type_text(t: NodeType) -> str:
    schema = t.config_model.model_json_schema()
    required = set(schema.get("required", []))
    ports_in = ", ".join(f"{n} ({p.type}{'' if p.required else ', optional'})" for n, p in t.inputs.items())
    ports_out = ", ".join(f"{n} ({p.type})" for n, p in t.outputs.items())
    lines = [f"- {t.type} ({t.label}, {t.category}): {t.description or t.label}"]
    lines.append(
        f"    inputs: {ports_in or 'none'}; outputs: {ports_out or 'none'} (every node also has `error`)"
    )
    props = schema.get("properties", {})
    if props:
        lines.append("    config:")
        lines += [_field_line(n, p, n in required) for n, p in props.items()]
    return "\n".join(lines)


def instructions() -> str:
    """The system prompt: the definition format, the rules and every installed node type."""
    catalogue = "\n".join(_node_type_text(t) for t in sorted(all_node_types(), key=lambda t: t.type))
    return f"""You design workflows for Flowloom. Answer with ONE JSON object, a workflow definition, and nothing
else (no prose, no code fence).

Format:
{{"name": str, "description": str, "mode": "dag",
 "inputs": JSON Schema of the run inputs (type object) or {{}},
 "nodes": [{{"id": "snake_case_id", "type": node type, "label": str, "config": {{...}},
            "position": {{"x": number, "y": number}}}}],
 "edges": [{{"id": str, "source": node id, "source_port": output port, "target": node id,
            "target_port": input port, "condition": optional Jinja expression}}]}}

Rules:
- exactly one node of type "start" and at least one "end"; every node reachable from start;
- edges join an output port of the source to an input port of the target, with compatible types;
- config holds only the fields listed for the type; templates use Jinja: {{{{ input.<name> }}}},
  {{{{ steps.<node id>.output.<port> }}}};
- credentials are referenced by secret NAME only (fields ending in _secret); never write a key or password;
- place nodes left to right, about 300 apart in x.

Node types:
{catalogue}
"""


def _blank_secrets(text: str) -> str:
    """`text` with the value of every secret this deployment knows replaced by [secret]."""
    values: set[str] = set()
    for info in secrets.list_secrets():
        value = secrets.get_secret(info.name)
        if value:
            values.add(value)
    for info in secrets.list_env_secrets():
        if info.env and os.environ.get(info.env):
            values.add(os.environ[info.env])
    s = get_settings()
    values |= {s.secret_key.get_secret_value(), s.database_url, s.redis_url, *s.sql_connections.values()}
    values |= {p.client_secret.get_secret_value() for p in s.oidc_providers}
    for value in sorted((v for v in values if v and len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, SECRET_MARK)
    return text


def first_prompt(description: str) -> str:
    return f"Design a workflow that does this:\n\n{description}"


def repair_prompt(description: str, answer: str, reasons: list[str]) -> str:
    listed = "\n".join(f"- {r}" for r in reasons)
    return (
        f"Design a workflow that does this:\n\n{description}\n\n"
        f"Your previous answer was refused by Flowloom's validator:\n{listed}\n\n"
        f"The previous answer was:\n{answer[:MAX_ECHO]}\n\n"
        "Answer again with the whole corrected definition as one JSON object."
    )


# ---------------------------------------------------------------------------------------------
# Asking the model: a run of the agent node type


def ask_definition(gen: Generator) -> WorkflowDefinition:
    """start -> agent -> end: the run that asks `gen` one question (instructions and prompt are inputs)."""
    agent_config: dict[str, Any] = {
        "provider": gen.provider, "model": gen.model, "system_prompt": "{{ input.instructions }}",
        "prompt": "{{ input.prompt }}", "temperature": 0.1, "max_tokens": gen.max_tokens,
        "max_iterations": 1,
    }  # fmt: skip
    if gen.base_url:
        agent_config["base_url"] = gen.base_url
    if gen.api_key_secret:
        agent_config["api_key_secret"] = gen.api_key_secret
    host = urlsplit(gen.base_url).netloc.rsplit("@", 1)[-1] if gen.base_url else ""
    text_input = {"type": "string", "minLength": 1}
    return parse_dict({
        "name": RUN_NAME,
        "description": "Asks the configured model to draft a workflow (the editor's Describe your workflow)",
        "inputs": {"type": "object", "required": ["instructions", "prompt"],
                   "properties": {"instructions": text_input, "prompt": text_input}},
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": ASK_NODE, "type": "agent", "label": "Draft the workflow", "config": agent_config,
             "timeout_s": gen.timeout_s},
            {"id": "end", "type": "end"},
        ],
        "edges": [{"id": "e1", "source": "start", "target": ASK_NODE},
                  {"id": "e2", "source": ASK_NODE, "target": "end"}],
        # The configured provider's host is allowed (a local server too); the HTTP timeout is the generator's.
        "policy": {"egress": {"allowed_hosts": [host] if host else [], "timeout_s": min(gen.timeout_s, 300)}},
    })  # fmt: skip


def run_asker(gen: Generator, *, started_by: str = "system", started_via: str = "") -> Ask:
    """An `Ask` that runs `ask_definition(gen)` on the workers and returns the agent's answer."""

    def ask(system: str, prompt: str) -> tuple[str, str]:
        run_id = start_run(ask_definition(gen), {"instructions": system, "prompt": prompt},
                           started_by=started_by, started_via=started_via)  # fmt: skip
        status = wait_for_end(run_id, gen.timeout_s + 30)
        if status not in TERMINAL_RUN:
            cancel_run(run_id, cancelled_by=started_by)
            raise GenerationError(
                f"the model did not answer within {gen.timeout_s + 30:.0f} s (run {run_id})"
            )
        view = get_run(run_id)
        step = next((s for s in view.steps if s["node_id"] == ASK_NODE), None) if view else None
        if status != "succeeded" or step is None:
            why = (step or {}).get("error") or (view.error if view else None) or status
            raise GenerationError(f"asking the model failed: {why} (run {run_id})")
        text = str(((step.get("outputs") or {}).get("out") or {}).get("text") or "")
        return text, run_id

    return ask


# ---------------------------------------------------------------------------------------------
# Reading and checking the answer

_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)


def read_answer(text: str) -> dict[str, Any]:
    """The JSON object in the model's answer (a code fence around it is tolerated); DefinitionError if none."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group("body").strip()
    if not body:
        raise DefinitionError("the model's answer is empty")
    if not body.startswith("{"):
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end < start:
            raise DefinitionError(f"the model's answer is not a JSON object: it starts with {body[:60]!r}")
        body = body[start : end + 1]
    try:
        data = load_json(body)
    except DefinitionError as exc:
        raise DefinitionError(f"the model's answer is not valid JSON ({exc.message})") from None
    if not isinstance(data, dict):
        raise DefinitionError(f"the model's answer is JSON but not an object: {type(data).__name__}")
    return data


def examine(text: str) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """(definition as data, errors, warnings) of one answer; errors are the validator's own sentences."""
    try:
        data = read_answer(text)
        defn = parse_dict(data)
    except DefinitionError as exc:
        return None, [user_message(exc)], []
    report = validate(defn)
    errors = [str(i) for i in report.errors][:MAX_ISSUES]
    warnings = [str(i) for i in report.warnings][:MAX_ISSUES]
    return (None if errors else defn.to_dict()), errors, warnings


def generate(
    description: str, *, ask: Ask | None = None, started_by: str = "system", started_via: str = ""
) -> Generated:
    """A validated definition for `description`, repaired once if needed; GenerationRefused with the
    reasons when the repair does not validate either, GenerationError when the model cannot be asked."""
    description = description.strip()
    if not description:
        raise GenerationError("describe the workflow first: the description is empty", field="description")
    if len(description) > MAX_DESCRIPTION:
        raise GenerationError(f"the description is longer than {MAX_DESCRIPTION} characters; shorten it",
                              field="description")  # fmt: skip
    if ask is None:
        gen = configured()
        if gen is None:
            raise GenerationError("no model is configured for generating workflows: set FLOWLOOM_GENERATOR_MODEL "
                                  "(and FLOWLOOM_GENERATOR_PROVIDER, _BASE_URL, _API_KEY_SECRET)")  # fmt: skip
        ask = run_asker(gen, started_by=started_by, started_via=started_via)
    system, wanted = instructions(), _blank_secrets(description)
    answer, run_id = ask(system, first_prompt(wanted))
    data, errors, warnings = examine(answer)
    if data is not None:
        return Generated(data, 1, [run_id], warnings=warnings)
    log.info("generated workflow refused (%d issues); asking for a repair", len(errors))
    repaired, second_run = ask(system, repair_prompt(wanted, answer, errors))
    data, second_errors, warnings = examine(repaired)
    if data is not None:
        return Generated(data, 2, [run_id, second_run], first_reasons=errors, warnings=warnings)
    raise GenerationRefused(
        "the model's workflow did not validate, even after one repair: " + "; ".join(second_errors[:3]),
        second_errors,
    )
