"""Reflex configuration: the app module, its plugins and ports, read from Flowloom's settings."""

import reflex as rx

from engine.settings import get_settings
from engine.web_hosts import app_origins

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
    # Light or dark as the operating system says (prefers-color-scheme), the canvas included: its
    # colours are theme tokens (assets/flow_node.jsx), and nothing else paints fixed colours.
    default_color_mode="system",
    backend_host=_settings.host,
    frontend_port=_settings.port,
    backend_port=_settings.port,
    # Reflex's default is "*" with credentials: the socket would accept any site's handshake and CORS
    # would echo any origin. Only the app's own origins and FLOWLOOM_CORS_ORIGINS.
    cors_allowed_origins=tuple(app_origins(_settings)),
    # app/api/security_headers.py hashes the inline scripts of HTML it can read: plain or gzip.
    frontend_compression_formats=["gzip"],
    # Flowloom keeps its own SQLModel engine (models.db); Reflex must not manage a database,
    # so no db_url here, and rx.Model is not used anywhere.
    db_url=None,
    # FLOWLOOM_WEB_STATE=redis: page state in Redis, so several web replicas serve one browser tab
    # (docs/deploy.md); handlers may hold a state's lock up to a minute (Reflex's default: 10 s).
    redis_url=_settings.redis_url if _settings.web_state == "redis" and _settings.redis_url else None,
    redis_lock_expiration=60_000,
)
