"""Template files: a workflow definition with the metadata the gallery shows and CI checks.

A template file (engine/templates/<key>.yaml, or a JSON/YAML file someone imports) has two keys:

    template:    the metadata (`TemplateMeta`): title, category, tags, what it needs, examples
    definition:  an ordinary workflow definition (engine.definition.WorkflowDefinition)

and, for a template whose definition calls sub-workflows, a third:

    subworkflows:  the workflows it calls (`BundledWorkflow`: a fixed id, a name, a definition),
                   installed as version 1 of that id when the template is used (once)

Files are read with the engine's safe parser (engine.parse: size cap, no YAML aliases, tags or
dates, no duplicate keys). What the metadata says the template needs is checked against the
definition, so the two cannot drift apart: its required inputs are the inputs schema's
`required`, its triggers the kinds in `triggers:`, its secrets every secret a node config or
a webhook trigger names. Pure: no database, no network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.definition import WorkflowDefinition
from engine.errors import DefinitionError
from engine.expressions import check_expression
from engine.parse import load_json, load_yaml, loc_path, parse_dict
from engine.secret_usage import secret_references
from engine.secrets import NAME_PATTERN as SECRET_NAME_PATTERN

KEY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
# The gallery's filter chips, in this order.
CATEGORIES: tuple[str, ...] = ("getting-started", "ai", "human", "integration", "events")
CATEGORY_LABELS: dict[str, str] = {
    "getting-started": "Getting started",
    "ai": "AI and documents",
    "human": "People in the loop",
    "integration": "Integrations",
    "events": "Event-driven",
}
TriggerKind = Literal["webhook", "schedule", "kafka", "form", "chat"]


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SecretNeed(_Meta):
    """A secret the template's nodes or triggers use: create it on the Secrets page first."""

    name: str = Field(pattern=SECRET_NAME_PATTERN)
    description: str = Field("", max_length=500)
    # Where the secret is sent, to bind it to (Secrets page: allowed destinations).
    destinations: list[str] = Field(default_factory=list, max_length=20)


class Needs(_Meta):
    """What someone must have before the template runs."""

    secrets: list[SecretNeed] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)  # the inputs schema's `required`
    triggers: list[TriggerKind] = Field(default_factory=list)  # the kinds of its triggers
    models: list[str] = Field(default_factory=list)  # local model folders (Models page)


class ToolCall(_Meta):
    name: str = Field(min_length=1, max_length=100)
    arguments: dict[str, Any] = Field(default_factory=dict)


class LLMReply(_Meta):
    """One scripted model reply for the example run: an answer, a tool call, or a broken reply."""

    # The reply answers the first request whose system or user messages contain this text
    # (agents running in parallel ask in any order); unset: the next request in turn.
    match: str | None = Field(None, min_length=1, max_length=200)
    answer: str | None = None
    tool_call: ToolCall | None = None
    broken: bool = False  # a reply with no choices: the agent step fails

    @model_validator(mode="after")
    def _one_kind(self) -> LLMReply:
        kinds = [self.answer is not None, self.tool_call is not None, self.broken]
        if sum(kinds) != 1:
            raise ValueError("give exactly one of answer, tool_call or broken: true")
        return self


class Decision(_Meta):
    """People deciding a human step of the example run, in order."""

    node: str = Field(min_length=1, max_length=64)
    action: str = Field("approved", min_length=1, max_length=64)
    voters: list[str] = Field(default_factory=lambda: ["approver@example.test"], min_length=1, max_length=20)
    role: Literal["operator", "editor", "admin"] = "operator"  # the voters' role
    form: dict[str, Any] = Field(default_factory=dict)
    comment: str = Field("", max_length=500)


class ServiceReply(_Meta):
    """One reply of the stand-in for the outside service the template calls (in turn; the last repeats)."""

    status: int = Field(200, ge=100, le=599)
    body: Any = None


class Expect(_Meta):
    """How the example run ends: its status, and expressions that must all be true.

    Checks are the engine's sandboxed expressions over `status`, `inputs`, `outputs`, `error`,
    `steps` (node id -> outputs of its latest visit), `visits` (node ids in the order they ran),
    `attempts` (node id -> attempts of its latest visit), `plan` (the execution plan's phases),
    `approvals` (node, status, quorum, deadline_s of each approval asked), `received`
    (requests the outside service got: method, path, headers, body, `secrets` whose values they
    carried, `signed_with` the secret whose key signs them) and `llm_requests` (the bodies sent
    to the model).
    """

    status: Literal["succeeded", "failed"] = "succeeded"
    checks: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("checks")
    @classmethod
    def _checks_compile(cls, checks: list[str]) -> list[str]:
        for index, check in enumerate(checks):
            problem = check_expression(check)
            if problem:
                raise ValueError(f"checks[{index}] {check!r}: {problem}")
        return checks


class Example(_Meta):
    """A worked example: the inputs (or trigger payload) and the scripted world it runs against.

    CI runs every example of every template end to end on the real engine.
    """

    name: str = Field("example", min_length=1, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)
    # Start through this trigger (its id in `triggers:`) with `input` as the payload; unset: a run.
    trigger: str | None = Field(None, max_length=64)
    turns: list[str] = Field(default_factory=list, max_length=10)  # chat messages, for a chat trigger
    llm: list[LLMReply] = Field(default_factory=list, max_length=50)
    decisions: list[Decision] = Field(default_factory=list, max_length=20)
    service: list[ServiceReply] = Field(default_factory=list, max_length=20)
    expect: Expect = Field(default_factory=Expect)


class BundledWorkflow(_Meta):
    """A workflow a template's sub-workflow nodes call, shipped with it and installed as version 1
    of the fixed `id` (so the template's definition can pin `workflow_id: <id>, version: 1`)."""

    id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    definition: dict[str, Any]

    @field_validator("definition")
    @classmethod
    def _parses(cls, definition: dict[str, Any]) -> dict[str, Any]:
        parse_dict(definition, source="subworkflow definition")
        return json.loads(json.dumps(definition))


class TemplateMeta(_Meta):
    """The `template:` block of a template file."""

    key: str = Field(pattern=KEY_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=2000)
    category: Literal["getting-started", "ai", "human", "integration", "events"]
    tags: list[str] = Field(default_factory=list, max_length=20)
    icon: str = Field("layout-template", pattern=r"^[a-z0-9-]{1,40}$")  # a lucide icon name
    needs: Needs = Field(default_factory=Needs)
    examples: list[Example] = Field(min_length=1, max_length=10)


@dataclass(frozen=True)
class Template:
    """A template as the gallery lists it: its metadata and the definition a copy starts from."""

    meta: TemplateMeta
    definition: dict[str, Any] = field(repr=False)
    source: str = ""
    subworkflows: tuple[BundledWorkflow, ...] = ()  # the workflows its definition calls

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def title(self) -> str:
        return self.meta.title

    @property
    def parsed(self) -> WorkflowDefinition:
        """The definition as the engine reads it."""
        return parse_dict(self.definition, source=self.source or None)

    def search_text(self) -> str:
        """What the gallery's search box matches (lower case)."""
        node_types = " ".join(str(n.get("type", "")) for n in self.definition.get("nodes") or [])
        parts = [self.meta.key, self.meta.title, self.meta.description, self.meta.category,
                 " ".join(self.meta.tags), " ".join(self.meta.needs.triggers), node_types]  # fmt: skip
        return " ".join(parts).lower()


def is_template_data(data: Any) -> bool:
    """Whether decoded file data is a template file (`template:` and `definition:`), not a bare definition."""
    return isinstance(data, Mapping) and "template" in data and "definition" in data


def load_text(text: str, source: str, fmt: Literal["json", "yaml"]) -> Any:
    """Decode a template or definition file's text with the definitions' safe parser."""
    return load_json(text, source) if fmt == "json" else load_yaml(text, source)


def template_from_data(data: Any, source: str) -> Template:
    """A checked template from decoded file data; DefinitionError says what is wrong and where."""
    if not is_template_data(data):
        raise DefinitionError(
            "a template file has two top-level keys, template: and definition:", path=source
        )
    extra = sorted(set(data) - {"template", "definition", "subworkflows"})
    if extra:
        raise DefinitionError(f"unknown top-level key(s) {', '.join(extra)}; only template:, definition: and "
                              "subworkflows:", path=source)  # fmt: skip
    bundled = _bundled(data.get("subworkflows") or [], source)
    definition = data["definition"]
    defn = parse_dict(definition, source=f"{source}: definition")
    try:
        json.dumps(data["template"], allow_nan=False)
        meta = TemplateMeta.model_validate(data["template"])
    except (TypeError, ValueError) as exc:
        if isinstance(exc, pydantic.ValidationError):
            first = exc.errors(include_url=False, include_input=False)[0]
            where = loc_path(("template", *first["loc"]))
            raise DefinitionError(first["msg"], path=f"{source}: {where}") from None
        raise DefinitionError(f"template: holds a value that is not JSON ({exc})", path=source) from None
    template = Template(meta, json.loads(json.dumps(definition)), source, bundled)
    _check_needs(template, defn)
    _check_examples(template, defn)
    return template


def _bundled(items: Any, source: str) -> tuple[BundledWorkflow, ...]:
    if not isinstance(items, list):
        raise DefinitionError("subworkflows: must be a list", path=source)
    found = []
    for index, item in enumerate(items):
        try:
            found.append(BundledWorkflow.model_validate(item))
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            where = loc_path((f"subworkflows[{index}]", *first["loc"]))
            raise DefinitionError(first["msg"], path=f"{source}: {where}") from None
    ids = [b.id for b in found]
    if len(set(ids)) != len(ids):
        raise DefinitionError("subworkflows: the same id is listed twice", path=source)
    return tuple(found)


def template_from_text(text: str, source: str, fmt: Literal["json", "yaml"] = "yaml") -> Template:
    """A checked template from a file's text."""
    return template_from_data(load_text(text, source, fmt), source)


def _where(template: Template, path: str) -> str:
    return f"{template.source}: template.{path}"


def _check_needs(template: Template, defn: WorkflowDefinition) -> None:
    """The metadata's needs must say exactly what the definition needs."""
    needs = template.meta.needs
    required = sorted(str(name) for name in (defn.inputs.get("required") or []))
    if sorted(needs.inputs) != required:
        raise DefinitionError(
            f"needs.inputs is {sorted(needs.inputs)} but the definition's inputs schema requires {required}",
            path=_where(template, "needs.inputs"),
        )
    kinds = sorted({t.kind for t in defn.triggers})
    if sorted(set(needs.triggers)) != kinds:
        raise DefinitionError(
            f"needs.triggers is {sorted(set(needs.triggers))} but the definition's triggers are {kinds}",
            path=_where(template, "needs.triggers"),
        )
    used = secret_references(template.definition) | {
        str(t.config["secret"]) for t in defn.triggers if t.kind == "webhook" and t.config.get("secret")
    }
    listed = {s.name for s in needs.secrets}
    if used != listed:
        missing, unused = sorted(used - listed), sorted(listed - used)
        parts = [f"the definition uses {', '.join(missing)}, not listed"] if missing else []
        parts += [f"{', '.join(unused)} listed but never used"] if unused else []
        raise DefinitionError("; ".join(parts), path=_where(template, "needs.secrets"))


def _check_examples(template: Template, defn: WorkflowDefinition) -> None:
    node_ids = {n.id for n in defn.nodes}
    triggers = {t.id: t.kind for t in defn.triggers}
    for index, example in enumerate(template.meta.examples):
        here = f"examples[{index}]"
        if example.trigger is not None and example.trigger not in triggers:
            raise DefinitionError(
                f"trigger {example.trigger!r} is not one of the definition's triggers ({', '.join(triggers) or 'none'})",
                path=_where(template, f"{here}.trigger"),
            )
        if example.input and triggers.get(example.trigger or "") in ("schedule", "chat"):
            raise DefinitionError(
                "input is not used with a schedule or chat trigger (the schedule's config has the inputs; "
                "a chat sends turns)",
                path=_where(template, f"{here}.input"),
            )
        if example.turns and triggers.get(example.trigger or "") != "chat":
            raise DefinitionError("turns need a chat trigger in example.trigger",
                                  path=_where(template, f"{here}.turns"))  # fmt: skip
        for d_index, decision in enumerate(example.decisions):
            if decision.node not in node_ids:
                raise DefinitionError(f"node {decision.node!r} is not in the definition",
                                      path=_where(template, f"{here}.decisions[{d_index}].node"))  # fmt: skip
