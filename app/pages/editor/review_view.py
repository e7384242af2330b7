"""The review bar beside the diff: the version under review, a note, Approve and Reject."""

from __future__ import annotations

import reflex as rx

from app.pages.editor.review_state import EditorReview as V
from app.pages.editor.tools_state import VersionRow

# A version may be submitted from these (engine.publishing.SUBMITTABLE), published from all but these.
_SUBMITTABLE = ("draft", "rejected", "superseded")
_COLOURS = {"draft": "gray", "in_review": "amber", "approved": "blue", "rejected": "red",
            "published": "green", "superseded": "gray"}  # fmt: skip


def status_badge(status) -> rx.Component:
    """A version's review state as a small badge."""
    return rx.box(
        rx.match(
            status,
            *[(name, rx.badge(name.replace("_", " "), color_scheme=colour, variant="soft", high_contrast=True))
              for name, colour in _COLOURS.items()],
            rx.badge(status, variant="soft", high_contrast=True),
        ),
        data_testid="version-status",
    )  # fmt: skip


def version_actions(v: VersionRow) -> rx.Component:
    """Submit for review, Review (approve or reject with the diff) and Publish, as the state allows;
    none for a viewer or on a workflow shared with you (only its own workspace publishes it)."""
    submittable = (
        (v.status == _SUBMITTABLE[0]) | (v.status == _SUBMITTABLE[1]) | (v.status == _SUBMITTABLE[2])
    )
    return rx.cond(V.can_publish, rx.hstack(
        rx.cond(submittable, rx.button("Submit for review", size="1", variant="soft",
                                       on_click=V.submit_version(v.version), data_testid="submit-version")),
        rx.cond(v.status == "in_review", rx.button("Review", size="1", variant="soft", color_scheme="amber",
                                                   on_click=V.open_review(v.version), data_testid="review-version")),
        rx.cond((v.status != "published") & (v.status != "in_review"),
                rx.button("Publish", size="1", variant="soft", color_scheme="green",
                          on_click=V.publish_version(v.version), data_testid="publish-version")),
        spacing="1", justify="end",
    ))  # fmt: skip


def review_bar(current_workflow) -> rx.Component:
    """Shown while a version in review is compared with the published one on the canvas."""
    return rx.cond(
        (V.review_version > 0) & (V.diff_workflow == current_workflow),
        rx.card(
            rx.vstack(
                rx.text("Review ", rx.text.strong("v", V.review_version), " against the published version",
                        size="2", id="review-title"),
                rx.text_area(placeholder="A note for the author (optional)", value=V.review_note,
                             on_change=V.set_review_note, rows="2", width="100%", id="review-note"),
                rx.hstack(
                    rx.button("Approve", size="1", color_scheme="green", on_click=V.approve_review,
                              id="review-approve"),
                    rx.button("Reject", size="1", color_scheme="red", variant="soft", on_click=V.reject_review,
                              id="review-reject"),
                    rx.spacer(),
                    rx.button("Close", size="1", variant="soft", color_scheme="gray", on_click=V.close_review),
                    width="100%",
                ),
                spacing="2", width="100%",
            ),
            position="absolute", right="1rem", top="1rem", width="20rem", z_index="6", id="review-bar",
        ),
    )  # fmt: skip
