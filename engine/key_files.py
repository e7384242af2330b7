"""Files in the data directory that hold keys and passwords: created 0600, refused when others may read them.

The secrets store's key (`secrets.key`), the session signing key (`secret_key`) and the passwords
of the embedded PostgreSQL and Redis live here. A file that a group or other users could read is
refused at start with the command that fixes it, instead of being used.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from engine.errors import ConfigError

SECRETS_KEY_FILE = "secrets.key"  # engine.secrets.KEY_FILE
SESSION_KEY_FILE = "secret_key"  # app.auth.sessions.SECRET_FILE
KEY_FILES = (SECRETS_KEY_FILE, SESSION_KEY_FILE)


def require_private(path: Path) -> None:
    """Refuse `path` when its mode gives its group or other users any access."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}` and start again"
        )


def check_key_files(data_dir: Path) -> None:
    """Refuse to start when a key file in `data_dir` is readable by its group or others."""
    for name in KEY_FILES:
        path = Path(data_dir) / name
        if path.exists():
            require_private(path)


def new_password() -> str:
    """A random password of URL-safe characters (fits in a URL without escaping)."""
    return secrets.token_urlsafe(32)


def read_or_create_password(path: Path, owner: tuple[int, int] | None = None) -> str:
    """The password in `path`, generated into it (mode 0600, exclusively) when the file is missing.

    `owner` (uid, gid) hands a new file to the service user that must read it too (root only).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        password = read_password(path)
    else:
        password = new_password()
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
    if owner is not None and path.stat().st_uid != owner[0]:
        os.chown(path, *owner)
    return password


def read_password(path: Path) -> str:
    """The password kept in `path` (refused when others may read it); "" when there is no file."""
    try:
        require_private(path)
        password = path.read_text().strip()
    except FileNotFoundError:
        return ""
    if not password:
        raise ConfigError(f"{path} is empty; it must hold the password the embedded service was set up with")
    return password
