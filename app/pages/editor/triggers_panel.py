"""The editor's Triggers tab: the workflow's triggers (kind, state, next runs, webhook URL, form page),
adding and removing them, the selected one's config form, pause and resume."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.triggers_state import KINDS, TriggerItem
from app.pages.editor.triggers_state import EditorTriggers as TS
from components.config_form import config_form
from components.labels import field_label

_STATUS_COLOR = {"live": "green", "paused": "amber", "disabled": "gray", "invalid": "red", "unsaved": "blue"}


def _status(item: TriggerItem) -> rx.Component:
    return rx.badge(
        item.status_label,
        color_scheme=rx.match(item.status, *_STATUS_COLOR.items(), "gray"),
        variant="soft", data_testid="trigger-status",
    )  # fmt: skip


def _where(item: TriggerItem) -> rx.Component:
    """Where the saved trigger lives: the webhook's URL path, the form's or chat's page."""
    return rx.fragment(
        rx.cond(
            item.webhook_path != "",
            rx.hstack(
                rx.badge("POST", variant="outline", size="1"),
                rx.code(item.webhook_path, size="1", word_break="break-all", data_testid="trigger-webhook-path"),
                spacing="1", align="center",
            ),
        ),
        rx.cond(
            item.page_path != "",
            rx.link(item.page_path, href=item.page_path, size="1", is_external=True, data_testid="trigger-page-path"),
        ),
    )  # fmt: skip


def _fires(item: TriggerItem) -> rx.Component:
    return rx.cond(
        item.next_fires.length() > 0,
        rx.vstack(
            rx.text(rx.cond(item.fires_are_preview, "Next runs, once saved", "Next runs"), size="1",
                    weight="medium", color=rx.color("gray", 11)),
            rx.foreach(item.next_fires, lambda t: rx.text(t, size="1", font_family="monospace",
                                                          data_testid="trigger-next-fire")),
            spacing="0", width="100%",
        ),
    )  # fmt: skip


def _actions(item: TriggerItem) -> rx.Component:
    small = {"size": "1", "variant": "soft"}
    return rx.hstack(
        rx.cond(
            item.saved_active,
            rx.cond(
                item.paused,
                rx.button(rx.icon("play", size=12), "Resume", on_click=TS.trig_resume(item.key), color_scheme="green",
                          data_testid="trigger-resume", **small),
                rx.button(rx.icon("pause", size=12), "Pause", on_click=TS.trig_pause(item.key), color_scheme="amber",
                          data_testid="trigger-pause", **small),
            ),
        ),
        rx.cond(
            item.saved_active & ((item.kind == "form") | (item.kind == "chat")),
            rx.button(rx.icon("key-round", size=12), "New token", on_click=TS.trig_rotate_token(item.key),
                      color_scheme="gray", data_testid="trigger-token", **small),
        ),
        rx.spacer(),
        rx.tooltip(
            rx.switch(checked=item.enabled, on_change=lambda v: TS.trig_set_enabled(item.key, v), size="1",
                      aria_label="Enabled", data_testid="trigger-enabled"),
            content="Enabled (takes effect when saved)",
        ),
        rx.icon_button(rx.icon("trash-2", size=12), size="1", variant="ghost", color_scheme="red",
                       on_click=TS.trig_remove(item.key), aria_label="Remove trigger", data_testid="trigger-remove"),
        width="100%", align="center", spacing="2",
    )  # fmt: skip


def _editor() -> rx.Component:
    """The selected trigger's id and config form."""
    return rx.vstack(
        rx.divider(),
        field_label("Id", "trigger-id-input"),
        rx.input(default_value=TS.trig_sel, key=TS.trig_sel, on_blur=TS.trig_rename, size="1", id="trigger-id-input"),
        rx.cond(TS.trig_error != "", rx.text(TS.trig_error, size="1", color=rx.color("red", 11))),
        config_form(TS.trig_fields, "trigger-config-form", set=TS.trig_set_field, flag=TS.trig_set_flag),
        spacing="2", width="100%", padding_top="0.4rem",
    )  # fmt: skip


def _row(item: TriggerItem) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.hstack(
                    rx.code(item.key, size="2", weight="bold"),
                    rx.text(item.kind_label, size="1", color=rx.color("gray", 11)),
                    spacing="2", align="center", cursor="pointer", on_click=TS.trig_select(item.key),
                    data_testid="trigger-select",
                ),
                rx.spacer(),
                _status(item),
                width="100%", align="center",
            ),
            rx.text(item.summary, size="1", color=rx.color("gray", 11)),
            rx.cond(item.problem != "", rx.text(item.problem, size="1", color=rx.color("red", 11),
                                                data_testid="trigger-problem")),
            _where(item),
            _fires(item),
            _actions(item),
            rx.cond(item.selected, _editor()),
            spacing="2", width="100%",
        ),
        size="1", width="100%",
        border=rx.cond(item.selected, f"1px solid {rx.color('accent', 8)}", "none"),
        data_testid="trigger-row", data_key=item.key, data_kind=item.kind, data_status=item.status,
    )  # fmt: skip


def _token_notice() -> rx.Component:
    return rx.cond(
        TS.trig_token != "",
        rx.callout.root(
            rx.callout.icon(rx.icon("key-round", size=14)),
            rx.vstack(
                rx.text("Access token of ", rx.code(TS.trig_token_key), ": copy it now, it is shown once.", size="1"),
                rx.code(TS.trig_token, size="1", word_break="break-all", id="trigger-token-value"),
                rx.button("Done", size="1", variant="soft", on_click=TS.trig_hide_token),
                spacing="1",
            ),
            color_scheme="blue", size="1", width="100%",
        ),
    )  # fmt: skip


def triggers_tab() -> rx.Component:
    """The tab's content (it reads the saved state again each time it opens)."""
    return rx.vstack(
        rx.text("Ways this workflow starts on its own. Edits are saved with the workflow; pause and "
                "resume take effect at once.", size="1", color=rx.color("gray", 11)),
        rx.hstack(
            rx.select.root(
                rx.select.trigger(flex="1", id="trigger-new-kind", aria_label="Kind of the new trigger"),
                rx.select.content(*[rx.select.item(label, value=kind) for kind, label in KINDS.items()]),
                value=TS.trig_new_kind, on_change=TS.trig_set_new_kind, size="1",
            ),
            rx.button(rx.icon("plus", size=12), "Add trigger", size="1", on_click=TS.trig_add, id="trigger-add"),
            width="100%", spacing="2",
        ),
        _token_notice(),
        rx.cond(TS.trig_rows.length() == 0, rx.text("No triggers yet: runs start from the Run button or the API.",
                                                    size="2", color=rx.color("gray", 11))),
        rx.foreach(TS.trig_rows, _row),
        spacing="3", width="100%", on_mount=TS.trig_refresh, id="triggers-tab",
    )  # fmt: skip
