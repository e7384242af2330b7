"""`flowloom relay`: publish the outbox to Kafka (what `flowloom up` starts when Kafka is configured)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from engine.errors import ConfigError
from engine.settings import get_settings

log = logging.getLogger(__name__)
# Like engine/ops/cli.py, the command imports what it uses when it runs, so the CLI starts fast.


def configure_relay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=int, default=500, help="events per transaction (default 500)")


def run_relay(args: argparse.Namespace) -> int:
    """Relay until SIGTERM or Ctrl-C; events not yet acknowledged stay in the outbox for the next start."""
    from engine.event_publisher import PublisherConfig, Topics
    from engine.event_relay import EventRelay, RelayConfig
    from engine.ops.embedded_postgres import embedded_database_url

    settings = get_settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigError(
            "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS is empty: the relay has no broker to publish to "
            "(set it, e.g. to 127.0.0.1:9092)"
        )
    database_url = settings.database_url or embedded_database_url(settings)
    publisher = PublisherConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=Topics(settings.kafka_topic_prefix),
        max_message_bytes=settings.kafka_max_message_bytes,
    )
    if not getattr(
        args, "verbose", False
    ):  # kafka-python logs every reconnect attempt; the relay says what matters
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    relay = EventRelay(database_url, publisher, RelayConfig(batch_size=max(args.batch_size, 1)))
    log.info(
        "relay: publishing the outbox to %s (%s)",
        publisher.bootstrap_servers,
        ", ".join(publisher.topics.all()),
    )
    relay.run(stop)
    totals = relay.totals
    log.info("relay: stopped after %d events and %d dead letters", totals.sent, totals.dead_lettered)
    return 0
