"""Kafka for development and tests: a single-node KRaft broker run from Maven jars (streams/kafka/jars.py).

Without Docker the broker is `kafka.Kafka` from `org.apache.kafka:kafka_2.13`, fetched once with Maven into
the cache dir. With `KAFKA_BOOTSTRAP_SERVERS` set, an existing cluster is used instead.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.config import MAX_MESSAGE_BYTES, Settings
from streams.kafka.jars import (
    KAFKA_VERSION,
    BrokerUnavailable,
    check_prerequisites,
    ensure_kafka_jars,
    java_executable,
    kafka_home,
    kafka_jars_ready,
)

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------- local broker


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _random_cluster_id() -> str:
    # Same format as Kafka's Uuid.randomUuid().toString(); saves a JVM start for `random-uuid`.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


_START_MARK = "===== starting kafka"


def _log_excerpt(path: Path, errors: int = 8, lines: int = 15) -> str:
    """ERROR lines and the last lines of the newest start in the broker log (the cause is rarely last)."""
    try:
        section = path.read_text(errors="replace").rsplit(_START_MARK, 1)[-1].splitlines()
    except OSError:
        return f"(no log at {path})"
    found = [ln for ln in section if re.match(r"\[[^]]*\] (ERROR|FATAL) ", ln) or ln.startswith("Caused by:")]
    head = f"errors:\n{chr(10).join(list(dict.fromkeys(found))[:errors])}\n" if found else ""
    return f"{head}last lines of {path}:\n" + "\n".join(section[-lines:])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine from sync code in a private thread and loop.

    A thread works inside a running loop too, and asyncio.run there cannot reset the caller's
    current event loop (pytest-asyncio's session loop) or install its SIGINT handler.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# shutdownHook=disable: log4j's own hook would otherwise stop logging before Kafka's shutdown hook runs.
LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


class LocalBroker:
    """A combined broker+controller KRaft node on 127.0.0.1, data and logs under `workdir`."""

    def __init__(
        self,
        workdir: Path,
        cache_dir: Path,
        port: int | None = None,
        heap: str = "512m",
        partitions: int = 4,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.cache_dir = Path(cache_dir)
        self.port = port or _free_port()
        self.controller_port = _free_port()
        while self.controller_port == self.port:
            self.controller_port = _free_port()
        self.heap = heap
        self.partitions = partitions
        self.log_path = self.workdir / "broker.log"
        self.pid_path = self.workdir / "broker.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- files

    def _server_properties(self) -> str:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": str(self.partitions),
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": str(MAX_MESSAGE_BYTES),
            "replica.fetch.max.bytes": str(MAX_MESSAGE_BYTES),
            # Small box: the cleaner allocates this per thread at startup (default 128 MiB).
            "log.cleaner.dedupe.buffer.size": "33554432",
            "num.network.threads": "2",
            "num.io.threads": "2",
        }
        return "".join(f"{key}={value}\n" for key, value in props.items())

    def _cluster_id(self) -> str:
        # Persisted so a restart over the same workdir matches the formatted meta.properties.
        path = self.workdir / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        cid = _random_cluster_id()
        path.write_text(cid + "\n")
        return cid

    def _java_cmd(self, main: str, *args: str, heap: str) -> list[str]:
        java = java_executable() or "java"
        libs = kafka_home(self.cache_dir) / "libs"
        return [
            java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp", f"{libs}/*", main, *args,
        ]  # fmt: skip

    def _check_stale_broker(self) -> None:
        if not self.pid_path.exists():
            return
        with contextlib.suppress(ValueError, OSError):
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if _pid_alive(pid) and "kafka.Kafka" in cmdline and str(self.workdir) in cmdline:
                raise BrokerUnavailable(
                    f"Another Kafka broker (pid {pid}) is running on {self.workdir}; "
                    f"stop it (`kill {pid}`) or use another data dir."
                )

    # -- lifecycle

    def start(self, timeout: float = 90) -> None:
        if self.is_running():
            return
        if not kafka_jars_ready(self.cache_dir):
            ensure_kafka_jars(self.cache_dir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._check_stale_broker()
        (self.workdir / "server.properties").write_text(self._server_properties())
        (self.workdir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
        try:
            self._start_once(timeout, self.heap)
        except BrokerUnavailable as exc:
            # The JVM exits on OOM (ExitOnOutOfMemoryError); one retry with the server script's 1g heap.
            if "OutOfMemoryError" not in str(exc) or self.heap == "1g":
                raise
            self.heap = "1g"
            self._start_once(timeout, self.heap)

    def _format_storage(self, heap: str) -> None:
        if (self.workdir / "data" / "meta.properties").exists():
            return  # already formatted; StorageTool would only say so (and cost a JVM start)
        cmd = self._java_cmd(
            "kafka.tools.StorageTool", "format", "-t", self._cluster_id(),
            "-c", str(self.workdir / "server.properties"), "--ignore-formatted", heap=heap,
        )  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise BrokerUnavailable(
                f"Formatting Kafka storage in {self.workdir / 'data'} failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr).strip()[-3000:]
            )

    def _start_once(self, timeout: float, heap: str) -> None:
        deadline = time.monotonic() + timeout
        self._format_storage(heap)
        with self.log_path.open("ab") as log:
            log.write(f"\n{_START_MARK} {KAFKA_VERSION} on {self.bootstrap_servers} =====\n".encode())
            log.flush()
            # Own session: a terminal Ctrl-C reaches only us, and we shut the broker down in order.
            self._proc = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(self.workdir / "server.properties"), heap=heap),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.pid_path.write_text(f"{self._proc.pid}\n")
        atexit.register(self.stop)
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._forget()
                raise BrokerUnavailable(
                    f"Kafka broker exited with code {code} during startup.\n" + _log_excerpt(self.log_path)
                )
            if _port_open(self.port) and _run_sync(_probe(self.bootstrap_servers, 3.0)):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable(
                    f"Kafka broker not ready after {timeout:.0f} s.\n" + _log_excerpt(self.log_path)
                )
            time.sleep(0.25)

    def _forget(self) -> None:
        self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """SIGKILL, as a crash would end it (fault scenarios); `start` again recovers from the same data."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(30)
            self._forget()

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after 30 s. Only touches the process we started."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._forget()


# --------------------------------------------------------------------------------------------- async helpers


async def _probe(bootstrap: str, timeout: float) -> bool:
    """True when a metadata request returns at least one broker."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await client.bootstrap()
            return bool(client.cluster.brokers())
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await client.close()


async def wait_until_reachable(bootstrap: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await _probe(bootstrap, min(5.0, max(0.5, deadline - time.monotonic()))):
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"Kafka at {bootstrap} was not reachable within {timeout:.0f} s")
        await asyncio.sleep(0.5)


# --------------------------------------------------------------------------------------------- entry points


@contextlib.contextmanager
def kafka_cluster(settings: Settings, timeout: float = 90) -> Iterator[str]:
    """Yield a bootstrap string: the configured cluster, else a local broker started (and stopped) here."""
    if settings.kafka_bootstrap_servers:
        _run_sync(wait_until_reachable(settings.kafka_bootstrap_servers, timeout))
        yield settings.kafka_bootstrap_servers
        return
    check_prerequisites(need_maven=not kafka_jars_ready(settings.cache_dir))
    ensure_kafka_jars(settings.cache_dir)
    broker = LocalBroker(settings.data_dir / "kafka", settings.cache_dir, partitions=settings.topic_partitions)
    broker.start(timeout)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


DEFAULT_BROKER_PORT = 9092


def run_broker(port: int, heap: str, timeout: float) -> int:
    """`denomas-usage broker start`: run a local broker in the foreground until Ctrl-C or SIGTERM."""
    settings = Settings.from_env()

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM behaves like Ctrl-C, also during startup

    previous = signal.signal(signal.SIGTERM, _interrupt)
    broker: LocalBroker | None = None
    try:
        check_prerequisites(need_maven=not kafka_jars_ready(settings.cache_dir))
        ensure_kafka_jars(settings.cache_dir)
        broker = LocalBroker(
            settings.data_dir / "kafka", settings.cache_dir, port=port or None, heap=heap,
            partitions=settings.topic_partitions,
        )  # fmt: skip
        started = time.monotonic()
        broker.start(timeout)
        print(f"Kafka {KAFKA_VERSION} ready in {time.monotonic() - started:.1f} s "
              f"(log: {broker.log_path}); Ctrl-C to stop", file=sys.stderr, flush=True)  # fmt: skip
        print(broker.bootstrap_servers, flush=True)
        while broker.is_running():
            time.sleep(0.5)
        print(f"error: broker exited unexpectedly\n{_log_excerpt(broker.log_path)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except BrokerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if broker is not None:
            broker.stop()
        signal.signal(signal.SIGTERM, previous)
