"""Access checks for Reflex: every event that arrives on the /_event socket, and every page load.

`EventGuard` (a Reflex app middleware) looks up the handler an event names and refuses it unless
its `requires` decorator or app.auth.policy.HANDLER_POLICY allows the caller, who is read from the
session cookie of the socket's handshake. Unknown handlers are refused (deny by default). When the
caller changes (sign-in, sign-out in the same tab), the tab's state is reset, so nothing loaded for
one user is shown to the next. `AuthState.check_page` is every page's on_load: it sends anonymous
callers to sign in, marks a page the caller may not open (403) or that does not exist (404) so the
layout shows that instead (app/error_views.py), and only then starts the page's own load events
(`register_page_loads`), so a refused page runs none of them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import reflex as rx
from reflex.event import Event
from reflex.middleware import Middleware
from reflex.state import BaseState, StateUpdate
from reflex_base.registry import RegistrationContext

from app.auth.middleware import login_url
from app.auth.policy import PUBLIC, Access, Role, allows, handler_access, page_access
from app.auth.principal import WORKSPACE_COOKIE, Principal, from_cookie_header
from engine import audit
from engine.contract.called_workflows import calls_within

log = logging.getLogger(__name__)

ACCESS_ATTR = "__flowloom_access__"
_NO_WORKSPACE = "00000000-0000-0000-0000-000000000000"  # a caller in none reaches no workflow
_APP_PACKAGES = ("app.", "components.")
# Reflex route -> the page's own on_load events, started by check_page once access is granted.
_PAGE_LOADS: dict[str, list[Any]] = {}


NOT_FOUND_DETAIL = "There is no page at this address. It may have moved, or the link is wrong."


def register_page_loads(route: str, events: list[Any]) -> None:
    """Remember the on_load events of the page at `route` (app.layout.add_pages calls it)."""
    _PAGE_LOADS[route] = list(events)


def _route_key(route: str) -> str:
    return "/" + route.strip("/") if route not in ("", "/", "index") else "/"


def caller_of(state: BaseState) -> Principal | None:
    """The signed-in user of the socket `state` belongs to (None when anonymous)."""
    return from_cookie_header(state.router.headers.cookie)


def audit_who(state: BaseState, principal: Principal | None = None) -> audit.Who:
    """How the audit log names the caller of an event: their actor, the UI, their address."""
    principal = principal or caller_of(state)
    return audit.Who(principal.actor if principal else "anonymous", "ui", state.router.session.client_ip)


def _refusal(principal: Principal | None, needed: Access | None, path: str) -> Any:
    if principal is None:
        return rx.redirect(login_url(path))
    if needed is None:
        return rx.toast.error("This action is not allowed.")
    return rx.toast.error(f"This needs the {needed} role; you are {principal.role}.")


def requires(role: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an event handler as needing `role`, and check it again inside the handler.

    Put it under `@rx.event`. The guard refuses callers below `role` before the handler runs; the
    check inside covers handlers called directly from other handlers.
    """

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        def refused(self: BaseState) -> Any:
            principal = caller_of(self)
            if principal is not None and allows(principal.role, role):
                return None
            return _refusal(principal, role, self.router.url.path)

        def within(self: BaseState) -> Any:
            # Nothing the handler derives comes from another workspace's workflows (a sub-workflow
            # node's ports are its called workflow's inputs and outputs): calls resolve in the caller's.
            principal = caller_of(self)
            return calls_within((principal.workspace_id if principal else "") or _NO_WORKSPACE)

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def wrapper(self, *args, **kwargs):
                if (refusal := refused(self)) is not None:
                    yield refusal
                    return
                async for item in fn(self, *args, **kwargs):
                    yield item

        elif inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def wrapper(self, *args, **kwargs):
                if (refusal := refused(self)) is not None:
                    return refusal
                with within(self):
                    return await fn(self, *args, **kwargs)

        elif inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def wrapper(self, *args, **kwargs):
                if (refusal := refused(self)) is not None:
                    yield refusal
                    return
                yield from fn(self, *args, **kwargs)

        else:

            @functools.wraps(fn)
            def wrapper(self, *args, **kwargs):
                if (refusal := refused(self)) is not None:
                    return refusal
                with within(self):
                    return fn(self, *args, **kwargs)

        setattr(wrapper, ACCESS_ATTR, role)
        return wrapper

    return decorator


def access_of(fn: Callable[..., Any]) -> Access | None:
    """What an event handler's function needs: its `requires` mark, else the policy table."""
    marked = getattr(fn, ACCESS_ATTR, None)
    if marked is not None:
        return marked
    return handler_access(getattr(fn, "__qualname__", ""))


class AuthState(rx.State):
    """Who is signed in, for display only; never trusted for a decision (the cookie is)."""

    user_email: str = ""
    user_name: str = ""
    user_role: str = ""
    # The workspace the tab acts in and the ones the user may switch to ({"id", "name", "role"}).
    workspace_id: str = ""
    workspace_name: str = ""
    workspace_options: list[dict[str, str]] = []
    # The page (route) this tab may not show, why (403 / 404) and the sentence that says so.
    error_route: str = ""
    error_status: int = 0
    error_detail: str = ""
    _owner: str = ""

    @rx.var
    def signed_in(self) -> bool:
        return self.user_role != ""

    @rx.var
    def can_edit(self) -> bool:
        return allows(self.user_role or None, Role.EDITOR)

    @rx.var
    def can_operate(self) -> bool:
        return allows(self.user_role or None, Role.OPERATOR)

    @rx.var
    def is_admin(self) -> bool:
        return allows(self.user_role or None, Role.ADMIN)

    def _show(self, principal: Principal | None) -> None:
        self.user_email = principal.email if principal else ""
        self.user_name = principal.name if principal else ""
        self.user_role = principal.role if principal else ""
        self.workspace_id = principal.workspace_id if principal else ""
        self.workspace_name = principal.workspace_name if principal else ""
        self.workspace_options = (
            [{"id": m.workspace_id, "name": m.name, "role": m.role} for m in principal.workspaces]
            if principal
            else []
        )

    @rx.var
    def has_workspaces(self) -> bool:
        return len(self.workspace_options) > 1

    @rx.event
    def switch_workspace(self, workspace_id: str) -> Any:
        """Act in another workspace: the browser keeps the choice in a cookie and reloads, so every
        page and event from then on is checked against the new workspace (the server decides whether
        the user is a member; an id they may not enter leaves them where they were)."""
        principal = caller_of(self)
        if principal is None:
            return rx.redirect(login_url(self.router.url.path))
        if workspace_id not in {m.workspace_id for m in principal.workspaces}:
            return rx.toast.error("There is no such workspace.")
        cookie = f"{WORKSPACE_COOKIE}={workspace_id}; path=/; samesite=lax; max-age=31536000"
        return rx.call_script(f"document.cookie = {cookie!r}; window.location.assign('/workflows')")

    @rx.event
    def check_page(self) -> Any:
        """The on_load of every page: anonymous callers go to /login; a caller without the page's role
        sees a 403 in the layout, an unknown page a 404; otherwise the page's own loads start."""
        principal = caller_of(self)
        self._show(principal)
        route = self.router.route_id or self.router.url.path
        needed = page_access(route)
        self.error_route, self.error_status, self.error_detail = "", 0, ""
        if needed != PUBLIC and principal is None:
            return rx.redirect(login_url(self.router.url.path))
        if needed is None:
            self._page_error(route, 404, NOT_FOUND_DETAIL)
            return None
        if principal is not None and not allows(principal.role, needed):
            self._page_error(route, 403, f"This page needs the {needed} role; you are signed in as "
                                         f"{principal.email} ({principal.role}). Ask an admin for access.")  # fmt: skip
            return None
        return _PAGE_LOADS.get(_route_key(route), [])

    def _page_error(self, route: str, status: int, detail: str) -> None:
        self.error_route, self.error_status, self.error_detail = _route_key(route), status, detail


class EventGuard(Middleware):
    """Refuses socket events whose handler the caller may not run (deny by default)."""

    async def preprocess(self, app: rx.App, state: BaseState, event: Event) -> StateUpdate | None:
        registered = RegistrationContext.get().event_handlers.get(event.name)
        fn = registered.handler.fn if registered is not None else None
        needed = access_of(fn) if fn is not None else None
        principal = await asyncio.to_thread(caller_of, state)
        await self._forget_previous_user(state, principal)
        if needed is not None and allows(principal.role if principal else None, needed):
            return None
        log.warning(
            "refused event %s for %s (needs %s)",
            getattr(fn, "__qualname__", event.name), principal.actor if principal else "anonymous",
            needed or "an entry in the access policy",
        )  # fmt: skip
        return StateUpdate(events=Event.from_event_type(_refusal(principal, needed, state.router.url.path)))

    async def _forget_previous_user(self, state: BaseState, principal: Principal | None) -> None:
        # Another user, or the same user in another workspace: nothing loaded before may show.
        owner = f"{principal.user_id}@{principal.workspace_id}" if principal else ""
        auth = await state.get_state(AuthState)
        if auth._owner == owner:
            return
        for substate in state.substates.values():
            if type(substate).__module__.startswith(_APP_PACKAGES):  # Reflex's internal states keep theirs
                substate.reset()
        auth._owner = owner
        auth._show(principal)
