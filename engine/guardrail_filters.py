"""The guardrails' detectors: PII, profanity, malicious code, secrets; local regexes and word lists.

No network and no model: every detector is a handful of regular expressions (plus a Luhn check
for card numbers and a mod-97 check for IBANs) run over each string of a JSON value, and each
one says which string it matched (`path`, e.g. `in.customer.email`). What they miss and what they
over-match is written in docs/guardrails.md: they are a tripwire for the obvious, not a DLP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# Strings longer than this are scanned in their first part only (a regex pass over megabytes per
# string per detector would hold the worker); the size limit rule is what bounds inputs.
SCAN_CHARS = 200_000
EXCERPT_CHARS = 24


@dataclass(frozen=True)
class Finding:
    """One match: the detector, what it found, where (a dotted path into the value) and a redacted excerpt."""

    detector: str  # e.g. pii.email, profanity, malicious_code.sql_injection
    path: str
    excerpt: str


def redacted_excerpt(text: str, start: int, end: int) -> str:
    """The match with its middle starred out and a little context, so the log never holds the value."""
    match = text[start:end]
    keep = 2 if len(match) > 6 else 1 if len(match) > 2 else 0
    hidden = match[:keep] + "*" * max(len(match) - 2 * keep, 1) + (match[-keep:] if keep else "")
    before = text[max(0, start - 8) : start]
    after = text[end : end + 8]
    excerpt = f"{before}{hidden}{after}".replace("\n", " ")
    return excerpt if len(excerpt) <= EXCERPT_CHARS * 2 else excerpt[: EXCERPT_CHARS * 2] + "…"


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (dict keys' values, list items) with its dotted path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}.{index}" if path else str(index))


# ---------------------------------------------------------------------------------------------
# PII


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> bool:
    digits = re.sub(r"[ -]", "", match.group(0))
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _iban(match: re.Match[str]) -> bool:
    text = re.sub(r" ", "", match.group(0)).upper()
    rearranged = text[4:] + text[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _ssn(match: re.Match[str]) -> bool:
    area, group, serial = match.group(1), match.group(2), match.group(3)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone(match: re.Match[str]) -> bool:
    return 9 <= len(re.sub(r"\D", "", match.group(0))) <= 15


_Check = Callable[[re.Match[str]], bool]
_PII: tuple[tuple[str, re.Pattern[str], _Check | None], ...] = (
    ("pii.email", re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"), None),
    ("pii.credit_card", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), _card),
    ("pii.iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), _iban),
    ("pii.us_ssn", re.compile(r"\b(\d{3})-(\d{2})-(\d{4})\b"), _ssn),
    # International (+CC ...) or a grouped national number such as (555) 123-4567 / 030 1234 5678.
    ("pii.phone", re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,3}"
        r"|\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![ .-]?\d)"), _phone),
)  # fmt: skip

# Secrets-shaped strings (output_filtering.sensitive_data_masking).
_SECRETS: tuple[tuple[str, re.Pattern[str], _Check | None], ...] = (
    ("secret.api_key", re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}\b"), None),
    ("secret.aws_access_key", re.compile(r"\bAKIA[0-9A-Z]{16}\b"), None),
    ("secret.github_token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), None),
    ("secret.bearer", re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}"), None),
    ("secret.private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), None),
    (
        "secret.assignment",
        re.compile(r"(?i)\b(?:password|passwd|secret|api_key|token)\s*[=:]\s*\S{6,}"),
        None,
    ),
)


def _scan(
    value: Any, table: tuple[tuple[str, re.Pattern[str], _Check | None], ...], root: str
) -> list[Finding]:
    found: list[Finding] = []
    for path, text in strings(value, root):
        text = text[:SCAN_CHARS]
        for name, pattern, check in table:
            for match in pattern.finditer(text):
                if check is None or check(match):
                    found.append(Finding(name, path, redacted_excerpt(text, match.start(), match.end())))
                    break
    return found


def find_pii(value: Any, root: str = "") -> list[Finding]:
    """E-mail addresses, card numbers (Luhn-valid), IBANs (mod-97-valid), US SSNs and phone numbers."""
    return _scan(value, _PII, root)


def find_secrets(value: Any, root: str = "") -> list[Finding]:
    """API-key, token, private-key and `password=...` shaped strings."""
    return _scan(value, _SECRETS, root)


def _mask_text(text: str, table: tuple[tuple[str, re.Pattern[str], _Check | None], ...]) -> tuple[str, int]:
    count = 0
    for name, pattern, check in table:
        label = f"[{name.split('.', 1)[-1]} removed]"

        def replace(match: re.Match[str], check: _Check | None = check, label: str = label) -> str:
            nonlocal count
            if check is not None and not check(match):
                return match.group(0)
            count += 1
            return label

        text = pattern.sub(replace, text)
    return text, count


def mask(value: Any, *, pii: bool, secrets: bool) -> tuple[Any, int]:
    """The value with every PII and/or secret match replaced by `[kind removed]`, and how many were."""
    table = (_PII if pii else ()) + (_SECRETS if secrets else ())
    if not table:
        return value, 0
    if isinstance(value, str):
        return _mask_text(value, table)
    if isinstance(value, dict):
        total, out = 0, {}
        for key, item in value.items():
            out[key], n = mask(item, pii=pii, secrets=secrets)
            total += n
        return out, total
    if isinstance(value, list | tuple):
        total, items = 0, []
        for item in value:
            masked, n = mask(item, pii=pii, secrets=secrets)
            items.append(masked)
            total += n
        return items, total
    return value, 0


# ---------------------------------------------------------------------------------------------
# Profanity: a short English list, matched as whole words (with common leet spellings).

_PROFANE_WORDS = (
    "fuck", "fucking", "fucker", "motherfucker", "shit", "shitty", "bullshit", "bitch", "bastard",
    "asshole", "dickhead", "cunt", "wanker", "twat", "prick", "slut", "whore", "crap", "damn",
    "piss", "pissed", "bollocks", "douchebag", "jackass",
)  # fmt: skip
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_WORD = re.compile(r"[A-Za-z0-9@$!]+")
_PROFANE = frozenset(_PROFANE_WORDS)


def find_profanity(value: Any, root: str = "", extra_words: tuple[str, ...] = ()) -> list[Finding]:
    """Whole words of the built-in list (or `extra_words`), case-insensitive, leet digits folded."""
    words = _PROFANE | {w.lower() for w in extra_words}
    found: list[Finding] = []
    for path, text in strings(value, root):
        text = text[:SCAN_CHARS]
        for match in _WORD.finditer(text):
            if match.group(0).lower().translate(_LEET) in words:
                found.append(Finding("profanity", path, redacted_excerpt(text, match.start(), match.end())))
                break
    return found


# ---------------------------------------------------------------------------------------------
# Malicious code: patterns of shell injection, SQL injection and script injection.

_MALICIOUS: tuple[tuple[str, re.Pattern[str], _Check | None], ...] = (
    ("malicious_code.shell_injection", re.compile(
        r"(?:[;&|`]|\$\()\s*(?:rm\s+-[rf]|curl\s|wget\s|nc\s|bash\b|sh\s+-c|chmod\s|python\d?\s+-c|cat\s+/etc/)"
        r"|\brm\s+-rf\s+/|/dev/tcp/|\bmkfifo\b|:\(\)\s*\{\s*:\|:&\s*\};:"), None),
    ("malicious_code.sql_injection", re.compile(
        r"(?i)(?:'\s*(?:or|and)\s+'?\d+'?\s*=\s*'?\d+|'\s*or\s+'[^']*'\s*=\s*'|;\s*(?:drop|delete|truncate|alter)\s+"
        r"(?:table|database|from)\b|\bunion\s+(?:all\s+)?select\b|'\s*;?\s*--|\bxp_cmdshell\b|\bsleep\s*\(\s*\d+\s*\)\s*--)"), None),
    ("malicious_code.script_injection", re.compile(
        r"(?i)<\s*script\b|javascript\s*:|\bon(?:error|load|click|mouseover)\s*=|<\s*iframe\b|<\s*object\b"
        r"|\beval\s*\(\s*(?:atob|unescape|String\.fromCharCode)"), None),
    ("malicious_code.python", re.compile(
        r"__import__\s*\(\s*['\"](?:os|subprocess|socket|ctypes)|\bos\.system\s*\(|\bsubprocess\.(?:Popen|run|call)\s*\("), None),
)  # fmt: skip


def find_malicious_code(value: Any, root: str = "") -> list[Finding]:
    """Shell-injection, SQL-injection, script-tag and Python-escape patterns."""
    return _scan(value, _MALICIOUS, root)


CONTENT_FILTERS: dict[str, Callable[..., list[Finding]]] = {
    "pii": find_pii,
    "profanity": find_profanity,
    "malicious_code": find_malicious_code,
}
