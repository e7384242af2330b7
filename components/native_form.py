"""A plain HTML form that the browser submits itself (rx.el.form always prevents that).

Sign-in and sign-out post to the server so the response can set or clear the HttpOnly session
cookie, which no event handler can do.
"""

from __future__ import annotations

from reflex_base.vars.base import Var
from reflex_components_core.el.elements.base import BaseHTML


class NativeForm(BaseHTML):
    """<form action=... method=...> without Reflex's submit handler."""

    tag = "form"

    action: Var[str]
    method: Var[str]


native_form = NativeForm.create
