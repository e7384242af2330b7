"""Ask before leaving a page with unsaved changes (assets/unsaved_guard.jsx): the browser's own prompt
when the tab closes or reloads, a confirmation when a link would open another page of the app."""

from __future__ import annotations

import reflex as rx


class UnsavedGuard(rx.Component):
    """The page-wide listener of assets/unsaved_guard.jsx (renders nothing)."""

    library = "$/public/unsaved_guard.jsx"
    tag = "UnsavedGuard"

    dirty: rx.Var[bool]
    message: rx.Var[str]


unsaved_guard = UnsavedGuard.create
