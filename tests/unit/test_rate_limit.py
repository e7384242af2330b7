"""engine.rate_limit without Redis: the in-process fallback, and admitting when Redis is down."""

from __future__ import annotations

import logging
import uuid

import pytest

from engine import rate_limit
from engine.ops.services import find_free_port


def test_without_a_redis_url_the_limit_is_counted_in_this_process():
    key = f"unit:{uuid.uuid4()}"
    assert [rate_limit.take(key, 3, redis_url="") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = rate_limit.take(key, 3, redis_url="")
    assert 0 < wait <= 20  # one request every 60/3 s once the burst is used
    assert rate_limit.retry_after(wait) in {str(s) for s in range(1, 21)}
    assert rate_limit.take(f"unit:{uuid.uuid4()}", 3, redis_url="") == 0.0  # another key, its own budget


def test_an_unreachable_redis_admits_the_request_and_says_so(caplog: pytest.LogCaptureFixture):
    url = f"redis://127.0.0.1:{find_free_port()}/0"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="engine.rate_limit"):
        assert rate_limit.take("unit:down", 1, redis_url=url) == 0.0
    assert "Redis did not answer" in caplog.text
