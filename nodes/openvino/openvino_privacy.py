"""OpenVINO's usage telemetry: off unless FLOWLOOM_OPENVINO_TELEMETRY=true.

The `openvino_telemetry` package (used by nncf and the model converter) sends usage data to
Google Analytics unless the consent file `~/intel/openvino_telemetry` holds "0"; the tools that
skip its opt-in dialog take a missing file as consent. Instead of writing into the user's home,
Flowloom answers the package's consent check with "declined" (what that file's "0" means) in
every process that loads an OpenVINO module. Importing this module is enough.
"""

from __future__ import annotations

import functools
from typing import Any

from engine.contract import node_environment

_PATCHED = "__flowloom_declines__"


def telemetry_allowed() -> bool:
    """True only when the setting opts in."""
    return node_environment().openvino_telemetry


def decline_telemetry() -> bool:
    """Make openvino_telemetry's consent check say "declined" unless the setting opts in.

    Returns False when the package is not installed (then nothing can be sent anyway).
    """
    try:
        from openvino_telemetry import Telemetry
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:
        return False
    original = OptInChecker.check
    if not getattr(original, _PATCHED, False):

        @functools.wraps(original)
        def check(self: OptInChecker, *args: Any, **kwargs: Any) -> ConsentCheckResult:
            if telemetry_allowed():
                return original(self, *args, **kwargs)
            return ConsentCheckResult.DECLINED

        setattr(check, _PATCHED, True)
        OptInChecker.check = check
    # The package keeps one Telemetry object per process; one made before this ran stops sending.
    existing = getattr(Telemetry, "_SingletonMetaClass__single_instance", None)
    if existing is not None and not telemetry_allowed():
        existing.consent = False
    return True


decline_telemetry()
