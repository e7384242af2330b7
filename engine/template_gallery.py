"""The template gallery: the one door to templates for the Templates page and CI.

Built-in templates are the files in engine/templates/ (one `<key>.yaml` each, see
engine.template_files for the format). Using a template creates an ordinary workflow whose
first saved version is the template's definition, through engine.workflows, so its triggers are
synced like any saved version's; the copy is then the user's to edit. Importing a file does the
same for a template file or a bare workflow definition (JSON or YAML).

The copy is made in the caller's workspace (`workspace_id`; None: the default one), and so are the
workflows a template calls: in the default workspace at their fixed ids, in any other at an id
derived from the fixed one and the workspace's (the copy's definition points at those), since a
workflow cannot call another workspace's.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from sqlmodel import Session

from engine import triggers, workflows
from engine.errors import DefinitionError, ErrorCode, FlowloomError
from engine.parse import parse_dict
from engine.template_files import (
    CATEGORIES,
    Template,
    is_template_data,
    load_text,
    template_from_data,
    template_from_text,
)
from engine.workflows import DESCRIPTION_MAX_LENGTH, NAME_MAX_LENGTH
from models.tables import Workflow
from models.workspace_column import DEFAULT_WORKSPACE_ID

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# An imported file is read whole into memory: far below the parser's own cap.
MAX_IMPORT_BYTES = 1_000_000


@dataclass(frozen=True)
class Created:
    """The workflow a template or an imported file became, and its first version's number."""

    workflow_id: str
    name: str
    version: int


@lru_cache(maxsize=1)
def _builtin() -> tuple[Template, ...]:
    found: list[Template] = []
    for path in sorted(TEMPLATES_DIR.glob("*.yaml")):
        source = f"templates/{path.name}"
        template = template_from_text(path.read_text(encoding="utf-8"), source, "yaml")
        if template.key != path.stem:
            raise DefinitionError(f"template.key is {template.key!r}; it must be the file's name, {path.stem!r}",
                                  path=source)  # fmt: skip
        found.append(template)
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return tuple(sorted(found, key=lambda t: (order.get(t.meta.category, 99), t.title.lower())))


def all_templates() -> list[Template]:
    """Every built-in template, by category then title; DefinitionError names a broken file."""
    return list(_builtin())


def categories() -> list[str]:
    """The categories that have templates, in the gallery's order."""
    present = {t.meta.category for t in _builtin()}
    return [c for c in CATEGORIES if c in present]


def list_templates(search: str = "", category: str = "") -> list[Template]:
    """Templates whose title, description, tags, triggers or node types contain every word of
    `search` (case-insensitive), in `category` when one is given."""
    words = search.lower().split()
    return [
        t
        for t in _builtin()
        if (not category or t.meta.category == category) and all(w in t.search_text() for w in words)
    ]


def get_template(key: str) -> Template:
    """The built-in template `key`; FlowloomError (not_found) when there is none."""
    for template in _builtin():
        if template.key == key:
            return template
    raise FlowloomError(f"no template {key!r}", code=ErrorCode.NOT_FOUND)


def _create(
    session: Session,
    name: str,
    description: str,
    definition: dict[str, Any],
    note: str,
    workspace_id: str | uuid.UUID | None = None,
) -> Created:
    workflow: Workflow = workflows.create_workflow(
        session, name[:NAME_MAX_LENGTH], description[:DESCRIPTION_MAX_LENGTH], workspace_id=workspace_id
    )
    version, _ = workflows.save_version(session, workflow.id, definition, note=note)
    # Nothing of a copy fires before its owner has adapted it: they resume its triggers in the editor.
    triggers.pause_all(session.connection(), workflow.id)
    return Created(str(workflow.id), workflow.name, version)


def subworkflow_ids(template: Template, workspace_id: str | uuid.UUID | None = None) -> dict[str, str]:
    """Where each workflow the template calls lives in workspace `workspace_id`: its fixed id in the
    default workspace (None), an id derived from it and the workspace's in any other."""
    workspace = workflows.parse_id(workspace_id) if workspace_id is not None else DEFAULT_WORKSPACE_ID
    if workspace is None:
        raise FlowloomError(f"no workspace {workspace_id!r}", code=ErrorCode.NOT_FOUND)
    if workspace == DEFAULT_WORKSPACE_ID:
        return {b.id: b.id for b in template.subworkflows}
    return {b.id: str(uuid.uuid5(uuid.UUID(b.id), str(workspace))) for b in template.subworkflows}


def _pointed(value: Any, ids: dict[str, str]) -> Any:
    """`value` (a definition) with every string that is a bundled workflow's fixed id replaced by `ids`."""
    if isinstance(value, dict):
        return {k: _pointed(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_pointed(v, ids) for v in value]
    return ids.get(value, value) if isinstance(value, str) else value


def install_subworkflows(
    session: Session, template: Template, *, workspace_id: str | uuid.UUID | None = None
) -> list[str]:
    """Install the workflows the template's definition calls (its `subworkflows:`, each as version 1
    of its id in workspace `workspace_id`, see subworkflow_ids) unless they exist; returns the ids
    installed now."""
    ids = subworkflow_ids(template, workspace_id)
    installed = []
    for bundled in template.subworkflows:
        note = f"installed by template {template.key}"
        at = ids[bundled.id]
        if workflows.install_workflow(session, uuid.UUID(at), bundled.name, bundled.description,
                                      _pointed(bundled.definition, ids), note,
                                      workspace_id=workspace_id):  # fmt: skip
            installed.append(at)
    return installed


def use_template(
    session: Session, key: str, *, name: str = "", workspace_id: str | uuid.UUID | None = None
) -> Created:
    """A new workflow in workspace `workspace_id` (None: the default one), named `name` (else the
    template's title), whose version 1 is the template's definition, in the caller's transaction;
    its triggers are synced as for any saved version. The workflows it calls (`subworkflows:`) are
    installed first in the same workspace, once."""
    template = get_template(key)
    return _from_template(session, template, name.strip() or template.title, f"from template {template.key}",
                          workspace_id)  # fmt: skip


def _from_template(
    session: Session, template: Template, name: str, note: str, workspace_id: str | uuid.UUID | None
) -> Created:
    install_subworkflows(session, template, workspace_id=workspace_id)
    definition = _pointed(template.definition, subworkflow_ids(template, workspace_id))
    return _create(session, name, template.meta.description, definition, note, workspace_id)


def _format_of(filename: str, text: str) -> Literal["json", "yaml"]:
    suffix = Path(filename).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix in ("", ".txt"):
        return "json" if text.lstrip().startswith(("{", "[")) else "yaml"
    raise DefinitionError(f"unknown file type {suffix!r}; import a .json, .yaml or .yml file", path=filename)


def read_import(raw: bytes, filename: str) -> Template | dict[str, Any]:
    """An uploaded file as a checked template, or as a bare definition (its data, already checked).

    DefinitionError says what is wrong: too big, not UTF-8, not JSON/YAML, or where the
    template or definition is invalid.
    """
    source = Path(filename or "upload").name[:100] or "upload"
    if len(raw) > MAX_IMPORT_BYTES:
        raise DefinitionError(
            f"the file is {len(raw):,} bytes; the limit for an import is {MAX_IMPORT_BYTES:,} bytes",
            path=source,
        )
    if not raw.strip():
        raise DefinitionError("the file is empty", path=source)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"not UTF-8 text (byte {exc.start})", path=source) from None
    data = load_text(text, source, _format_of(source, text))
    if is_template_data(data):
        return template_from_data(data, source)
    parse_dict(data, source=source)
    return json.loads(json.dumps(data))


def import_file(
    session: Session, raw: bytes, filename: str, *, workspace_id: str | uuid.UUID | None = None
) -> Created:
    """A new workflow in workspace `workspace_id` (None: the default one) from an uploaded template
    file or definition, in the caller's transaction."""
    found = read_import(raw, filename)
    if isinstance(found, Template):
        return _from_template(session, found, found.title,
                              f"imported from template file {Path(filename).name[:100]}", workspace_id)  # fmt: skip
    return _create(session, str(found["name"]), str(found.get("description") or ""), found,
                   f"imported from {Path(filename).name[:100]}", workspace_id)  # fmt: skip
