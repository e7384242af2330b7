"""The `flowloom` console script: the engine's operations commands plus the app's own (set-password).

engine.ops.cli holds the commands and the dispatch; the engine never imports the app, so the
commands that act on the app's tables (the local admin account) are added here.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from engine.errors import ErrorCode, FlowloomError
from engine.ops.cli import COMMANDS, Command, load_settings
from engine.ops.cli import main as run_command
from engine.ops.exit_codes import ExitCode


class PasswordMismatch(FlowloomError):
    """The two passwords typed at the prompt differ."""

    code = ErrorCode.PASSWORDS_DIFFER


def configure_set_password(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("email", help="the local admin's e-mail address (its sign-in name)")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )


def read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice at a prompt that does not echo it."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("New password: ")
    if getpass.getpass("Repeat it: ") != password:
        raise PasswordMismatch("the passwords differ")
    return password


def run_set_password(args: argparse.Namespace) -> int:
    """Create the local admin `email`, or give it a new password, on the configured or embedded database."""
    from app.auth.local import check_password_rules, set_password
    from engine.ops.health import require
    from engine.ops.launcher import resolved_services
    from engine.ops.migrate import check_schema
    from models.db import session_scope

    password = read_password(args.password_stdin)
    check_password_rules(password)  # before starting anything
    with resolved_services(load_settings(), redis=False) as settings:
        require(check_schema(settings.database_url))  # a fresh database: run `flowloom migrate` first
        with session_scope(settings.database_url) as session:
            user = set_password(session, args.email, password, actor="cli")
            email, role = user.email, user.role
    sys.stdout.write(f"{email} can now sign in with that password (role {role})\n")
    return ExitCode.OK


COMMANDS_WITH_APP: dict[str, Command] = {
    **COMMANDS,
    "set-password": Command(
        "create the local admin account or set a new password (on the embedded database unless "
        "FLOWLOOM_DATABASE_URL is set)",
        configure_set_password,
        run_set_password,
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `flowloom` console script."""
    return run_command(argv, commands=COMMANDS_WITH_APP)


if __name__ == "__main__":
    sys.exit(main())
