"""The `flowloom` command's exit codes, one per kind of outcome, so scripts can tell them apart."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a `flowloom` exit status means (listed in `flowloom --help`)."""

    OK = 0
    FAILED = 1  # the command ran and the answer is no: an invalid workflow, a failed run, a failed check
    USAGE = 2  # the command line is wrong: unknown command or option, a missing or malformed argument
    CONFIG = 3  # a FLOWLOOM_* setting is invalid, or a service it names cannot be reached or is not ready
    INTERRUPTED = 130  # Ctrl-C


HELP = """exit codes:
  0    success
  1    the command failed (an invalid workflow, a failed run, a failed check, a refused password)
  2    usage error (unknown command or option, missing or malformed argument)
  3    configuration error (an invalid FLOWLOOM_* setting; a database or Redis that cannot be
       reached or is not migrated)
  130  interrupted (Ctrl-C)"""
