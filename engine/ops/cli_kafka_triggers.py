"""`flowloom kafka-triggers`: start a run per message of every live Kafka trigger (what `flowloom up`
starts when Kafka is configured)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from engine.errors import ConfigError
from engine.settings import get_settings

log = logging.getLogger(__name__)
# Like engine/ops/cli.py, the command imports what it uses when it runs, so the CLI starts fast.


def configure_kafka_triggers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--refresh-s", type=float, default=5.0,
        help="how often the list of live Kafka triggers is read again (default 5 s)",
    )  # fmt: skip


def run_kafka_triggers(args: argparse.Namespace) -> int:
    """Consume until SIGTERM or Ctrl-C; what was not committed is read again at the next start."""
    from engine.event_publisher import PublisherConfig, Topics
    from engine.kafka_triggers import ConsumerConfig, KafkaTriggers
    from engine.ops.embedded_urls import use_embedded_services

    settings = get_settings()
    if not settings.kafka_bootstrap_servers:
        raise ConfigError(
            "FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS is empty: Kafka triggers have no broker to consume from "
            "(set it, e.g. to 127.0.0.1:9092)"
        )
    # Empty URLs mean the embedded services (as for `flowloom worker`): runs are recorded in the
    # database and their first steps sent to the Celery broker.
    use_embedded_services(settings)
    settings = get_settings()
    publisher = PublisherConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=Topics(settings.kafka_topic_prefix),
        max_message_bytes=settings.kafka_max_message_bytes,
    )
    if not getattr(args, "verbose", False):  # kafka-python logs every reconnect attempt
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    consumers = KafkaTriggers(
        settings.database_url, publisher, ConsumerConfig(refresh_s=max(args.refresh_s, 0.1))
    )
    log.info("kafka-triggers: consuming from %s (dead letters to %s)", publisher.bootstrap_servers,
             publisher.topics.dead_letter)  # fmt: skip
    consumers.run(stop)
    log.info("kafka-triggers: stopped")
    return 0
