"""State of the sign-in page: the providers, the local admin form and first-run setup."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import quote

import reflex as rx
from sqlmodel import select

from app import db
from app.auth import local, oidc
from app.auth.guard import caller_of
from engine.db_errors import DB_ERRORS, describe_db_error
from engine.errors import ConfigError, ErrorCode, user_message
from models.auth import User

log = logging.getLogger(__name__)

# /login?error=<code>: only these texts are shown, never what came in the URL.
MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.STATE: "The sign-in could not be verified (its state did not match). Start again.",
    ErrorCode.ID_TOKEN: "The provider's answer did not check out, so the sign-in was refused.",
    ErrorCode.ISSUER: "The answer came from another provider than the one you chose; sign-in refused.",
    ErrorCode.PROVIDER_REFUSED: "The provider refused the sign-in.",
    ErrorCode.PROVIDER_UNAVAILABLE: "The provider did not answer. Try again later.",
    ErrorCode.UNKNOWN_PROVIDER: "That sign-in provider is not configured.",
    ErrorCode.INACTIVE: "Your account is deactivated. Ask an admin.",
    ErrorCode.BAD_CREDENTIALS: "Wrong e-mail or password.",
    ErrorCode.TOO_MANY_ATTEMPTS: "Too many attempts. Wait a minute and try again.",
    ErrorCode.SETUP_CODE: "The setup code does not match the one in the data directory.",
    ErrorCode.SETUP_DONE: "Setup is already done; sign in instead.",
    ErrorCode.PASSWORD_SHORT: f"Use a password of at least {local.MIN_PASSWORD_LENGTH} characters.",
    ErrorCode.PASSWORD_LONG: "That password is too long.",
    ErrorCode.PASSWORDS_DIFFER: "The two passwords differ.",
    ErrorCode.EMAIL: "Enter an e-mail address such as admin@example.com.",
}


@dataclass
class ProviderButton:
    """One "Sign in with ..." button."""

    name: str
    label: str
    href: str


class LoginState(rx.State):
    """What the sign-in page offers."""

    providers: list[ProviderButton] = []
    show_local: bool = False
    setup_needed: bool = False
    setup_code_path: str = ""
    next: str = ""
    error: str = ""
    notice: str = ""
    signed_in_as: str = ""

    @rx.event
    def load(self) -> None:
        """Read the query (?error, ?next, ?signed_out) and what sign-in methods exist."""
        query = self.router.url.query_parameters
        self.error = MESSAGES.get(query.get("error", ""), "")
        self.notice = "You are signed out." if query.get("signed_out") else ""
        wanted = query.get("next", "")
        self.next = wanted if wanted.startswith("/") and not wanted.startswith("//") else ""
        principal = caller_of(self)
        self.signed_in_as = principal.email if principal else ""
        try:
            registry = oidc.registry()
            suffix = f"?next={quote(self.next, safe='')}" if self.next else ""
            self.providers = [
                ProviderButton(p.name, p.label, f"/auth/login/{p.name}{suffix}") for p in registry.listed()
            ]
        except ConfigError as exc:
            log.warning("sign-in providers are misconfigured: %s", exc)
            self.providers, self.error = [], user_message(exc)
        try:
            with db.db_session() as session:
                self.setup_needed = local.setup_needed(session)
                has_local = session.exec(select(User.id).where(User.issuer == local.LOCAL_ISSUER)).first()
            self.show_local = has_local is not None or not self.providers
            self.setup_code_path = str(local.ensure_setup_code()) if self.setup_needed else ""
        except DB_ERRORS as exc:
            self.error = describe_db_error(exc)
