"""`webhook.send` (importing the package registers it)."""

from nodes.webhook import webhook_send  # noqa: F401
