"""The dashboard's chart links open the runs list with the same filters (app/pages/run_filters.py)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from app.pages.dashboard_state import PERIOD_LABELS, runs_href
from app.pages.run_filters import FilterError, RunFilters, from_params
from engine.run_stats import PERIODS


@pytest.mark.parametrize("period", list(PERIODS))
def test_each_chart_link_reads_back_as_the_runs_pages_filters(period: str) -> None:
    href = runs_href(period, status="failed", workflow="0b5c7f0e-4a1e-4c55-9d6e-0d1f3f0a2b11")
    url = urlsplit(href)
    assert url.path == "/runs"
    filters = from_params({k: v[0] for k, v in parse_qs(url.query).items()})
    assert filters == RunFilters(
        workflow="0b5c7f0e-4a1e-4c55-9d6e-0d1f3f0a2b11", status="failed", range=period
    )


def test_a_period_link_alone_and_a_bad_filter() -> None:
    assert runs_href("24h") == "/runs?range=24h"
    with pytest.raises(FilterError):
        runs_href("24h", status="exploded")
    assert set(PERIOD_LABELS) == set(PERIODS)  # every period the picker offers can be charted
