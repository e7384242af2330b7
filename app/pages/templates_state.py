"""State of the Templates page: the gallery's cards, search and category filter, "use" and import.

Templates come from engine.template_gallery (files in engine/templates/). Anyone signed in may
browse; using a template or importing a file creates a workflow, so it needs the editor role. The
copy is made in the caller's current workspace (app.pages.workspace_scope).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import reflex as rx
from reflex.event import EventSpec

from app import db, routes
from app.auth.guard import audit_who, requires
from app.auth.policy import Role
from app.pages.workspace_scope import current_workspace
from components.graph_preview import preview_data_url
from engine import audit, template_gallery
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import FlowloomError, user_message
from engine.template_files import CATEGORY_LABELS, Template

log = logging.getLogger(__name__)


@dataclass
class TemplateCard:
    """One template as its card shows it."""

    key: str
    title: str
    description: str
    category: str
    category_label: str
    icon: str
    tags: list[str]
    preview: str  # a data: URL of the graph's SVG
    nodes: int
    mode: str
    secrets: list[str]
    inputs: list[str]
    triggers: list[str]
    models: list[str]
    needs_nothing: bool


@dataclass
class CategoryChip:
    """A filter chip: a category (value "" = all) and how many templates it has."""

    value: str
    label: str
    count: int


def _card(template: Template) -> TemplateCard:
    meta, needs = template.meta, template.meta.needs
    return TemplateCard(
        key=meta.key,
        title=meta.title,
        description=meta.description,
        category=meta.category,
        category_label=CATEGORY_LABELS.get(meta.category, meta.category),
        icon=meta.icon,
        tags=list(meta.tags),
        preview=preview_data_url(template.definition),
        nodes=len(template.definition.get("nodes") or []),
        mode="state machine" if template.definition.get("mode") == "state_machine" else "DAG",
        secrets=[s.name for s in needs.secrets],
        inputs=list(needs.inputs),
        triggers=list(needs.triggers),
        models=list(needs.models),
        needs_nothing=not (needs.secrets or needs.inputs or needs.triggers or needs.models),
    )


class TemplatesState(rx.State):
    """The gallery: every card, the search text and category, and the import dialog."""

    cards: list[TemplateCard] = []
    chips: list[CategoryChip] = []
    search: str = ""
    category: str = ""
    error: str = ""
    loaded: bool = False
    import_open: bool = False
    import_error: str = ""
    # A file import's progress: -1 idle, 0-99 while the file uploads, 100 while it is checked and saved.
    import_percent: int = -1

    @rx.var
    def shown(self) -> list[TemplateCard]:
        """The cards that match the search box and the chosen category (the gallery's own search)."""
        try:
            keys = {t.key for t in template_gallery.list_templates(self.search, self.category)}
        except FlowloomError:
            return []
        return [card for card in self.cards if card.key in keys]

    @rx.event
    @requires(Role.VIEWER)
    def load(self) -> None:
        """Read the gallery's templates into cards."""
        try:
            templates = template_gallery.all_templates()
        except FlowloomError as exc:
            log.error("the template gallery cannot be read: %s", exc)
            self.cards, self.chips, self.error = [], [], user_message(exc)
            self.loaded = True
            return
        self.cards = [_card(t) for t in templates]
        counts = {c: sum(1 for t in templates if t.meta.category == c) for c in template_gallery.categories()}
        self.chips = [CategoryChip("", "All", len(templates))] + [
            CategoryChip(c, CATEGORY_LABELS.get(c, c), n) for c, n in counts.items()
        ]
        self.error, self.loaded = "", True

    @rx.event
    @requires(Role.VIEWER)
    def set_search(self, value: str) -> None:
        self.search = value[:200]

    @rx.event
    @requires(Role.VIEWER)
    def set_category(self, value: str) -> None:
        self.category = value if value in CATEGORY_LABELS else ""

    @rx.event
    @requires(Role.EDITOR)
    def use_template(self, key: str) -> EventSpec | list[EventSpec]:
        """Create the template's editable copy and open it in the editor."""
        try:
            with audit.acting_as(audit_who(self)), db.db_session() as session:
                created = template_gallery.use_template(session, key, workspace_id=current_workspace(self))
        except FlowloomError as exc:
            return rx.toast.error(user_message(exc))
        except DB_ERRORS as exc:
            log.warning("creating a workflow from template %s failed: %s", key, exc)
            return rx.toast.error(describe_db_error(exc))
        return [
            rx.toast.success(f'Created "{created.name}" from its template'),
            rx.redirect(routes.workflow_editor(created.workflow_id)),
        ]

    @rx.event
    @requires(Role.VIEWER)
    def set_import_open(self, value: bool) -> None:
        self.import_open, self.import_error, self.import_percent = value, "", -1

    @rx.event
    @requires(Role.EDITOR)
    def import_progress(self, progress: dict) -> None:
        """The browser's upload progress (`progress` is the fraction sent so far)."""
        try:
            fraction = float(progress.get("progress", 0))
        except (TypeError, ValueError):
            return
        self.import_percent = max(0, min(100, round(fraction * 100)))

    @rx.event
    @requires(Role.EDITOR)
    async def import_file(self, files: list[rx.UploadFile]) -> EventSpec | list[EventSpec] | None:
        """Create a workflow from an uploaded template file or definition (JSON or YAML)."""
        self.import_percent = -1
        if not files:
            self.import_error = "Choose a .json or .yaml file."
            return None
        upload = files[0]
        raw = await upload.read(template_gallery.MAX_IMPORT_BYTES + 1)
        name = getattr(upload, "name", None) or getattr(upload, "filename", None) or "upload"
        try:
            with audit.acting_as(audit_who(self)), db.db_session() as session:
                created = template_gallery.import_file(
                    session, raw, str(name), workspace_id=current_workspace(self)
                )
        except FlowloomError as exc:
            self.import_error = user_message(exc)
            return None
        except DB_ERRORS as exc:
            log.warning("importing %s failed: %s", name, exc)
            self.import_error = describe_db_error(exc)
            return None
        self.import_open, self.import_error = False, ""
        return [
            rx.toast.success(f'Imported "{created.name}"'),
            rx.redirect(routes.workflow_editor(created.workflow_id)),
        ]
