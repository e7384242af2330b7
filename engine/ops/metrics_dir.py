"""Where the processes' Prometheus samples live (multiprocess mode), set up before anything imports
prometheus_client: `flowloom up` gives all its children one fresh directory; a lone `flowloom worker`
makes one of its own and removes it when it stops.

This module must not import prometheus_client (nor engine.metrics): its job is to set the
directory before that import happens.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from engine.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def launcher_dir(settings: Settings) -> Path:
    """The directory `flowloom up` shares with its children: <data dir>/metrics."""
    return settings.resolved_data_dir / "metrics"


def fresh(path: Path) -> Path:
    """An empty directory at `path` (an earlier start's samples removed)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def worker_dir(settings: Settings) -> Path | None:
    """Point PROMETHEUS_MULTIPROC_DIR at a directory for this worker's pool; the path when this
    worker made it (and must remove it), None when one was given (by `flowloom up`, say)."""
    if os.environ.get(MULTIPROC_ENV):
        return None
    if "prometheus_client" in sys.modules:  # too late to switch: the pool would count per process
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    path = fresh(settings.resolved_data_dir / "metrics" / f"worker-{os.getpid()}")
    os.environ[MULTIPROC_ENV] = str(path)
    return path
