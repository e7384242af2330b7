"""The local admin account (no provider needed): an argon2 password set on first start.

Two ways to set it, neither of which leaves an account without a password:
- the first-run form on /login, shown only while no user exists, which asks for the one-time
  setup code Flowloom writes to `<data dir>/setup_code` (mode 0600, never logged);
- `flowloom set-password EMAIL` on the server (app/cli.py; also resets a forgotten password).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func
from sqlmodel import Session, select

from app.auth.policy import Role
from app.auth.users import count_users
from engine import audit
from engine.errors import ErrorCode, FlowloomError
from engine.settings import get_settings
from models.auth import User
from models.tables import utcnow

LOCAL_ISSUER = "local"
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
SETUP_CODE_FILE = "setup_code"

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both cases take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class LocalAccountError(FlowloomError):
    """A password or setup request was refused; `code` names the reason for /login?error=<code>."""

    code = ErrorCode.BAD_CREDENTIALS

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message, code=code)


def check_password_rules(password: str) -> None:
    """Refuse passwords that are too short or absurdly long."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise LocalAccountError(
            ErrorCode.PASSWORD_SHORT, f"password: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise LocalAccountError(
            ErrorCode.PASSWORD_LONG, f"password: use at most {MAX_PASSWORD_LENGTH} characters"
        )


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or any(c.isspace() for c in email):
        raise LocalAccountError(ErrorCode.EMAIL, "email: enter an e-mail address such as admin@example.com")
    return email


def set_password(session: Session, email: str, password: str, *, actor: str) -> User:
    """Create the local admin `email`, or give it a new password."""
    email = _normalise_email(email)
    check_password_rules(password)
    user = session.exec(select(User).where(User.issuer == LOCAL_ISSUER, User.subject == email)).first()
    created = user is None
    if user is None:
        user = User(
            issuer=LOCAL_ISSUER, subject=email, email=email, name=email.split("@")[0], role=Role.ADMIN
        )
    user.email_verified = True  # the local account's address is its own sign-in name
    user.password_hash = _hasher.hash(password)
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.created" if created else "user.password_changed",
        target_type="user",
        target_id=str(user.id),
        details={"issuer": LOCAL_ISSUER, "email": email, "role": user.role},
    )
    return user


def verify_login(session: Session, email: str, password: str) -> User | None:
    """The active local user whose password this is, or None (same time either way)."""
    try:
        email = _normalise_email(email)
    except LocalAccountError:
        email = ""
    user = None
    if email:
        user = session.exec(select(User).where(User.issuer == LOCAL_ISSUER, User.subject == email)).first()
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.password_hash or not user.is_active:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = utcnow()
    session.add(user)
    return user


def setup_code_path() -> Path:
    """Where the one-time setup code lives."""
    return get_settings().resolved_data_dir / SETUP_CODE_FILE


def setup_needed(session: Session) -> bool:
    """True while no sign-in provider is configured and no user exists (the only time the form shows).

    With providers, admins come from FLOWLOOM_ADMIN_EMAILS; a local account can still be made
    with the command line.
    """
    return not get_settings().oidc_providers and count_users(session) == 0


def ensure_setup_code() -> Path:
    """Write a setup code (mode 0600) if there is none; returns its path, never the code."""
    path = setup_code_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(18))
    return path


def complete_setup(session: Session, *, code: str, email: str, password: str, ip: str = "") -> User:
    """Create the first admin with the setup code; refused once any user exists."""
    # Serialise concurrent first-run requests on a transaction-level advisory lock.
    session.execute(select(func.pg_advisory_xact_lock(7286351)))
    if not setup_needed(session):
        raise LocalAccountError(
            ErrorCode.SETUP_DONE, "setup is already done (or sign-in providers are configured)"
        )
    path = setup_code_path()
    try:
        expected = path.read_text().strip()
    except OSError:
        raise LocalAccountError(ErrorCode.SETUP_CODE, "setup code: open /login again to create one") from None
    if not code or not hmac.compare_digest(code.strip().encode(), expected.encode()):
        raise LocalAccountError(ErrorCode.SETUP_CODE, f"setup code: it does not match the code in {path}")
    user = set_password(session, email, password, actor="setup")
    audit.record(
        session, actor=user.email, action="auth.setup", target_type="user", target_id=str(user.id), ip=ip
    )
    path.unlink(missing_ok=True)
    return user
