"""Secret references in node configs: a name stored in the definition, the value read from the environment."""

from __future__ import annotations

import os
import re

from engine.errors import StepError

ENV_PREFIX = "FLOWLOOM_SECRET_"
# Letters, digits, "_" and "-": the name maps onto an environment variable.
NAME_PATTERN = r"^[A-Za-z0-9_-]*$"


def secret_env_var(name: str) -> str:
    """The environment variable holding secret `name` (upper-cased, "-" becomes "_")."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def resolve_secret(name: str, *, field: str) -> str | None:
    """The value of secret `name`; None when no name is set; StepError naming the variable when unset."""
    if not name:
        return None
    var = secret_env_var(name)
    value = os.environ.get(var, "")
    if not value:
        raise StepError(
            f"{field}: secret {name!r} is not set; define the environment variable {var}", retryable=False
        )
    return value
