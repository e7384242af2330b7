"""Reflex configuration: the app module, its plugins and ports, read from Flowloom's settings."""

import reflex as rx

from engine.settings import get_settings

_settings = get_settings()

config = rx.Config(
    app_name="app",
    plugins=[
        rx.plugins.SitemapPlugin(),
        rx.plugins.RadixThemesPlugin(
            theme=rx.theme(accent_color="violet", gray_color="slate", radius="large", scaling="100%"),
        ),
    ],
    telemetry_enabled=False,
    show_built_with_reflex=False,
    default_color_mode="light",
    backend_host=_settings.host,
    frontend_port=_settings.port,
    backend_port=_settings.port,
    # Flowloom keeps its own SQLModel engine (models.db); Reflex must not manage a database,
    # so no db_url here, and rx.Model is not used anywhere.
    db_url=None,
)
