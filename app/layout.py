"""The app shell: the sidebar, the page frame and the page decorator every page goes through."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import reflex as rx
from reflex.event import EventType

from app import routes
from app.auth.guard import AuthState, register_page_loads
from app.error_views import not_found, page_error
from components.native_form import native_form
from components.shortcuts import shortcuts_help

PageFunction = Callable[[], rx.Component]
SIDEBAR_WIDTH = "15rem"


@dataclass(frozen=True)
class NavItem:
    """One sidebar link."""

    label: str
    route: str
    icon: str
    admin_only: bool = False  # shown to admins only (the page's policy refuses others anyway)


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("Workflows", routes.WORKFLOWS, "workflow"),
    NavItem("Runs", routes.RUNS, "play"),
    NavItem("Inbox", routes.INBOX, "inbox"),
    NavItem("Templates", routes.TEMPLATES, "layout-template"),
    NavItem("Dashboard", routes.DASHBOARD, "layout-dashboard"),
    NavItem("Agents", routes.AGENTS, "bot"),
    NavItem("Knowledge", routes.KNOWLEDGE, "library"),
    NavItem("Models", routes.MODELS, "cpu"),
    NavItem("Settings", routes.SETTINGS, "settings"),  # every signed-in user's keys; admins' users too
    NavItem("Secrets", routes.SECRETS, "key-round", admin_only=True),
    NavItem("Dead letters", routes.DEAD_LETTERS, "mail-warning", admin_only=True),
    NavItem("Audit", routes.AUDIT, "scroll-text", admin_only=True),
    NavItem("Workspaces", routes.WORKSPACES, "users", admin_only=True),
)


def _nav_link(item: NavItem, active: bool) -> rx.Component:
    return rx.link(
        rx.hstack(
            rx.icon(item.icon, size=18),
            rx.text(item.label, size="2", weight="medium" if active else "regular"),
            align="center",
            spacing="3",
            padding_x="0.75rem",
            padding_y="0.5rem",
            border_radius="var(--radius-3)",
            background=rx.color("accent", 3) if active else "transparent",
            color=rx.color("accent", 11) if active else rx.color("gray", 11),
            _hover={"background": rx.color("accent", 3) if active else rx.color("gray", 3)},
            width="100%",
        ),
        href=item.route,
        underline="none",
        width="100%",
        id=f"nav-{item.label.lower().replace(' ', '-')}",
        custom_attrs={"aria-current": "page"} if active else {},
    )


def _brand() -> rx.Component:
    return rx.link(
        rx.hstack(
            rx.image(src="/logo.svg", width="28px", height="28px", alt=""),
            rx.text("Flowloom", size="4", weight="bold", color=rx.color("gray", 12)),
            align="center",
            spacing="2",
        ),
        href=routes.WORKFLOWS,
        underline="none",
        id="brand",
    )


def _account() -> rx.Component:
    """Who is signed in, with their role, a link to their API keys and the sign-out button."""
    return rx.cond(
        AuthState.signed_in,
        rx.vstack(
            rx.link(
                rx.text(AuthState.user_email, size="2", weight="medium", trim="both", id="account-email"),
                href=routes.SETTINGS,
                color=rx.color("gray", 12),
                underline="none",
            ),
            rx.hstack(
                rx.badge(AuthState.user_role, variant="soft", id="account-role"),
                rx.spacer(),
                # A plain form post: the server revokes the session and clears the HttpOnly cookie.
                native_form(
                    rx.button("Sign out", type="submit", size="1", variant="ghost", id="sign-out"),
                    action="/auth/logout",
                    method="post",
                ),
                align="center",
                width="100%",
            ),
            spacing="1",
            width="100%",
            padding="0.5rem 0.75rem",
            id="account",
        ),
    )


def _workspace_switcher() -> rx.Component:
    """The workspace this tab acts in; a menu to switch when the user belongs to more than one."""
    return rx.cond(
        AuthState.signed_in,
        rx.box(
            rx.text("Workspace", size="1", color=rx.color("gray", 11), as_="div"),
            rx.cond(
                AuthState.has_workspaces,
                rx.select.root(
                    rx.select.trigger(width="100%", aria_label="Workspace", id="workspace-switcher"),
                    rx.select.content(
                        rx.foreach(
                            AuthState.workspace_options,
                            lambda w: rx.select.item(w["name"], value=w["id"]),
                        )
                    ),
                    value=AuthState.workspace_id,
                    on_change=AuthState.switch_workspace,
                    size="2",
                ),
                rx.text(AuthState.workspace_name, size="2", weight="medium", id="workspace-name"),
            ),
            width="100%",
            padding_x="0.75rem",
            margin_top="0.75rem",
        ),
    )


def sidebar(active_route: str) -> rx.Component:
    """The left navigation; the link of `active_route` is highlighted."""
    return rx.vstack(
        rx.box(_brand(), padding_x="0.75rem", padding_y="0.25rem"),
        _workspace_switcher(),
        rx.el.nav(
            rx.vstack(
                *[
                    rx.cond(AuthState.is_admin, _nav_link(item, item.route == active_route))
                    if item.admin_only
                    else _nav_link(item, item.route == active_route)
                    for item in NAV_ITEMS
                ],
                spacing="1",
                width="100%",
            ),
            aria_label="Main",
            width="100%",
            margin_top="1rem",
        ),
        rx.spacer(),
        _account(),
        rx.hstack(
            rx.link(
                rx.hstack(
                    rx.icon("book-open", size=16), rx.text("API docs", size="2"), spacing="2", align="center"
                ),
                href=routes.API_DOCS,
                is_external=True,
                color=rx.color("gray", 11),
                underline="none",
            ),
            rx.spacer(),
            shortcuts_help(size="1"),
            align="center",
            width="100%",
            padding_x="0.75rem",
        ),
        width=SIDEBAR_WIDTH,
        min_width=SIDEBAR_WIDTH,
        height="100vh",
        position="sticky",
        top="0",
        padding="1rem 0.75rem",
        border_right=f"1px solid {rx.color('gray', 4)}",
        background=rx.color("gray", 1),
        role="banner",  # brand, navigation and account: the site's header, drawn as a sidebar
        id="sidebar",
    )


def page_header(title: str, description: str, *actions: rx.Component) -> rx.Component:
    """A page's title, one-line description and its buttons on the right."""
    return rx.hstack(
        rx.vstack(
            rx.heading(title, size="6", weight="bold"),
            rx.text(description, size="2", color=rx.color("gray", 11)),
            spacing="1",
        ),
        rx.spacer(),
        *actions,
        align="center",
        width="100%",
        margin_bottom="1.5rem",
    )


def empty_state(element_id: str, icon: str, title: str, text: str, *actions: rx.Component) -> rx.Component:
    """What a page shows when it has nothing to list."""
    return rx.center(
        rx.vstack(
            rx.center(
                rx.icon(icon, size=26, color=rx.color("accent", 11)),
                width="3.5rem",
                height="3.5rem",
                border_radius="var(--radius-4)",
                background=rx.color("accent", 3),
            ),
            rx.heading(title, size="4", weight="medium", as_="h2"),
            rx.text(text, size="2", color=rx.color("gray", 11), text_align="center", max_width="26rem"),
            *actions,
            align="center",
            spacing="3",
        ),
        padding_y="4rem",
        border=f"1px dashed {rx.color('gray', 6)}",
        border_radius="var(--radius-4)",
        background="var(--color-panel-solid)",
        width="100%",
        id=element_id,
    )


def error_callout(message: rx.Var[str]) -> rx.Component:
    """A red callout shown while `message` is not empty."""
    return rx.cond(
        message != "",
        rx.callout(
            message,
            icon="circle-alert",
            color_scheme="red",
            width="100%",
            margin_bottom="1rem",
            id="page-error",
        ),
    )


def loading() -> rx.Component:
    """What a page shows until its first load has answered."""
    return rx.center(rx.spinner(size="3"), padding_y="4rem", width="100%")


def listing(
    loaded: rx.Var[bool],
    has_rows: rx.Var[bool],
    content: rx.Component,
    empty: rx.Component,
    spinner: bool = False,
) -> rx.Component:
    """Once `loaded`: `content` while there is something to list, else `empty`; before that a spinner
    (with `spinner`) or nothing."""
    shown = rx.cond(has_rows, content, empty)
    return rx.cond(loaded, shown, loading()) if spinner else rx.cond(loaded, shown)


def shell(content: rx.Component, active_route: str) -> rx.Component:
    """The sidebar beside the page's content."""
    return rx.hstack(
        sidebar(active_route),
        rx.el.main(
            rx.box(content, max_width="72rem", margin_x="auto", padding="2rem 2.5rem"),
            flex="1",
            min_width="0",
            min_height="100vh",
            background=rx.color("gray", 2),
            id="main",
        ),
        spacing="0",
        align="start",
        width="100%",
    )


@dataclass(frozen=True)
class PageSpec:
    """A page the decorator registered: its content in the shell, where it lives, what loads it."""

    render: PageFunction
    route: str
    title: str
    on_load: EventType[()] | None
    aliases: tuple[str, ...]


_PAGES: list[PageSpec] = []


def page(
    route: str,
    title: str,
    on_load: EventType[()] | None = None,
    aliases: Sequence[str] = (),
    bare: bool = False,
) -> Callable[[PageFunction], PageFunction]:
    """Declare the decorated content function as the page at `route` (and `aliases`) inside the shell.

    A `bare` page (the full-screen workflow editor) brings its own frame instead of the shell. While
    `AuthState.check_page` refuses the page (403) or finds none (404), the shell shows that instead.
    """

    def decorator(content: PageFunction) -> PageFunction:
        @functools.wraps(content)
        def render() -> rx.Component:
            keys = ["/" + p.strip("/") if p.strip("/") else "/" for p in (route, *aliases)]
            refused = functools.reduce(lambda a, b: a | b, [AuthState.error_route == k for k in keys])
            if bare:
                return rx.cond(refused, shell(page_error(), active_route=route), content())
            return shell(rx.cond(refused, page_error(), content()), active_route=route)

        _PAGES.append(PageSpec(render, route, f"{title} · Flowloom", on_load, tuple(aliases)))
        return render

    return decorator


def add_pages(app: rx.App) -> None:
    """Add every declared page to `app`.

    Pages are added once, here, rather than with `rx.page`: Reflex re-applies `rx.page`
    registrations at every compile, and the forked production worker compiles again.
    """
    for spec in _PAGES:
        # The access check is every page's load (app.auth.guard); it starts the page's own loads.
        own = (
            [] if spec.on_load is None else spec.on_load if isinstance(spec.on_load, list) else [spec.on_load]
        )
        for path in (spec.route, *spec.aliases):
            register_page_loads(path, own)
            app.add_page(spec.render, route=path, title=spec.title, on_load=AuthState.check_page)
    # Every unknown address: the app's own 404 page in the shell, not Reflex's bare text.
    app.add_page(
        lambda: shell(not_found(), active_route=""), route="404", title="Page not found · Flowloom",
        on_load=AuthState.check_page,
    )  # fmt: skip
